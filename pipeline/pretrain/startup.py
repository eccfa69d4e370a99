"""Where a training process's seconds before its first step go: one log line per run.

`StartupClock` takes the process's own start time from the kernel (so the interpreter's start
and the imports count) and marks phases as the process reaches them; a callback
(`pipeline.pretrain.run.StartupReport`) prints them when the first training batch starts:

    startup: 6.1 s to the first step: imports 3.2, data and model 0.4, MLflow 1.1, trainer 0.2,
    fit set-up 1.2

The line goes to stdout, into the Prefect task's log; `benchmarks/startup.py` reads it. A second
line, `first batch: 41.2 s (compile on)`, follows the first micro-batch: with `pretrain.compile`
that is where torch.compile's seconds go (`benchmarks/compile_bench.py` reads it).
"""

from __future__ import annotations

import os
import time

STARTUP_PREFIX = "startup: "
FIRST_BATCH_PREFIX = "first batch: "
"""The line after the first training micro-batch: its seconds (torch.compile's, when on)."""


def process_start_time() -> float:
    """This process's start as a `time.time()` value (Linux /proc), else now."""
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return time.time() - uptime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time()


class StartupClock:
    """Phases since the process started, in the order they were marked."""

    def __init__(self) -> None:
        self.start = process_start_time()
        self.last = self.start
        self.phases: dict[str, float] = {}

    def mark(self, phase: str) -> None:
        now = time.time()
        self.phases[phase] = self.phases.get(phase, 0.0) + max(now - self.last, 0.0)
        self.last = now

    def line(self) -> str:
        shown = ", ".join(f"{name} {seconds:.1f}" for name, seconds in self.phases.items())
        total = sum(self.phases.values())
        return f"{STARTUP_PREFIX}{total:.1f} s to the first step: {shown}"
