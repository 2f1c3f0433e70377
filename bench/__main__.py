"""`make bench`: every benchmark against one sandbox, then ONE table (figure, goal, measured, ratio).

    .venv/bin/python -m bench [--roles 1000] [--clusters 5000] [--calls 100] [--output FILE]

Order matters, each step reuses what the previous left: the role burst (bench/burst.py), the
gateway over stdio (bench/gateway.py), the gateway next to the original server when one is given
(bench/original.py: --original or $CNPG_MCP_ORIGINAL; it needs the simulator, so it runs before
bench/gateway.py stops it to create the many Clusters), then the operator restart over everything
that exists (bench/operator_scale.py). Figures only: nothing here passes or fails on a goal.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from pathlib import Path

from bench import burst, gateway, operator_scale, original
from bench.common import Row, print_table
from bench.sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roles", type=int, default=1000, help="PgRoleRequests in the burst")
    parser.add_argument("--clusters", type=int, default=5000, help="Clusters listed by list_postgres_clusters")
    parser.add_argument("--calls", type=int, default=100, help="timed calls per gateway figure")
    parser.add_argument("--original", default=os.environ.get(original.ENVIRONMENT),
                        help="the command that starts the original cnpg-mcp server (compared like for like)")
    parser.add_argument("--output", type=Path, help="also write the table there")
    parser.add_argument("--keep", action="store_true", help="keep the sandbox folder (logs, audit log)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows: list[Row] = []
    with Sandbox.start(keep=args.keep) as sandbox:
        made = burst.run(sandbox, args.roles)
        rows += made.rows
        print(f"[{time.monotonic() - started:.0f}s] burst done", flush=True)
        rows += original.run(sandbox, args.original, args.calls)
        gateway_rows, _ = gateway.run(sandbox, args.calls, args.clusters)
        rows += gateway_rows
        print(f"[{time.monotonic() - started:.0f}s] gateway done", flush=True)
        rows += operator_scale.run(sandbox, made.namespace)
    table = io.StringIO()
    print_table(rows, table)
    table.write(f"\n{time.monotonic() - started:.0f}s in all\n")
    print("\n" + table.getvalue(), end="", flush=True)
    if args.output:
        args.output.write_text(table.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
