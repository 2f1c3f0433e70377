"""`python -m devcluster.simulator`: the CNPG simulation as a process (see __init__.py)."""

from devcluster.simulator.process import main

raise SystemExit(main())
