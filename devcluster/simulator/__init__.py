"""CNPG SIMULATOR — a simulation of the CloudNativePG operator, for tests and the dev sandbox only.

This is NOT CloudNativePG, NOT part of the cnpg-mcp operator, and never shipped in the wheel. It
watches CNPG 1.30 objects on a real API server and plays the part CNPG would play, against ONE real
PostgreSQL server shared by every simulated Cluster. One small module per kind it plays (clusters,
databases, database_roles, pods, secrets), a registry (kind → handler), and a runtime with failure
isolation. What it does and does NOT imitate: docs/cnpg-simulator.md.

Run: ``python -m devcluster.simulator --kubeconfig PATH --postgres-json PATH``.
"""

from devcluster.simulator.process import launch_simulator, main, stop_simulator
from devcluster.simulator.runtime import READY_LINE

__all__ = ["READY_LINE", "launch_simulator", "main", "stop_simulator"]
