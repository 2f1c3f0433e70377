"""Print the warm start time and memory of the local control plane (not a test).

    .venv/bin/python bench/controlplane_start.py [runs]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from devcluster import controlplane


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    controlplane.locate_binaries()  # build outside the timing if the cache is cold
    durations: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            started = time.monotonic()
            plane = controlplane.start(Path(folder))
            durations.append(time.monotonic() - started)
            time.sleep(5)  # let the controller manager settle before reading memory
            memory = {name: rss_mib(pid) for name, pid in plane.pids.items()}
            plane.stop()
    print(f"warm start (binaries cached, CRDs installed and discoverable): "
          f"median {statistics.median(durations):.1f}s over {runs} runs "
          f"(min {min(durations):.1f}s, max {max(durations):.1f}s)")
    print("memory after start (RSS): " + ", ".join(f"{n} {m:.0f} MiB" for n, m in memory.items())
          + f", total {sum(memory.values()):.0f} MiB")


if __name__ == "__main__":
    main()
