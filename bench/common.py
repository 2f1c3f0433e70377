"""What every benchmark shares: process figures from /proc, percentiles, and the one results table."""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15 of stat)


def children_running(parent: int, module: str) -> list[int]:
    """Direct children of `parent` whose command line runs `python -m module`."""
    found = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        for child in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
            if module.encode() in cmdline:
                found.append(int(child))
    return found


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


@dataclass(frozen=True)
class Row:
    """One line of the results table. `goal` is the target (None: reported only); lower is better."""

    figure: str
    measured: float
    unit: str
    goal: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return self.measured / self.goal if self.goal else None


def print_table(rows: list[Row], out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    width = max([len(r.figure) for r in rows] + [6])
    header = f"{'figure':{width}s}  {'goal':>12s}  {'measured':>12s}  {'ratio':>6s}  note"
    print(header, file=stream)
    print("-" * len(header), file=stream)
    for row in rows:
        goal = f"≤ {row.goal:g} {row.unit}" if row.goal is not None else "-"
        measured = f"{row.measured:.4g} {row.unit}"
        ratio = f"{row.ratio:.2f}" if row.ratio is not None else "-"
        print(f"{row.figure:{width}s}  {goal:>12s}  {measured:>12s}  {ratio:>6s}  {row.note}",
              file=stream, flush=True)
