"""The machine a benchmark runs on: what it is, and whether anything else is using it.

The CPU time of other processes is read from /proc/stat minus this process
tree's own; a benchmark waits for an idle machine before each run and records
how busy the rest of the machine was while it ran.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import time
from dataclasses import dataclass

TICKS = os.sysconf("SC_CLK_TCK")


def describe() -> dict[str, object]:
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(), "system": platform.platform()}


def _busy_ticks() -> int:
    """CPU ticks spent busy by the whole machine since boot."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle


def _own_ticks() -> int:
    """CPU ticks of this process and its waited-for children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return round((me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime) * TICKS)


@dataclass
class OtherLoad:
    """Share of the machine (0..cpus) used by other processes between start() and stop()."""

    children: list[subprocess.Popen] | None = None  # running children whose CPU is ours too
    value: float = 0.0

    def _child_ticks(self) -> int:
        total = 0
        for child in self.children or []:
            try:
                with open(f"/proc/{child.pid}/stat") as f:
                    parts = f.read().rsplit(")", 1)[1].split()
                total += int(parts[11]) + int(parts[12])  # utime, stime
            except (OSError, IndexError, ValueError):
                pass
        return total

    def start(self) -> OtherLoad:
        self._t0 = time.monotonic()
        self._busy0, self._own0, self._kids0 = _busy_ticks(), _own_ticks(), self._child_ticks()
        return self

    def stop(self) -> float:
        elapsed = (time.monotonic() - self._t0) * TICKS
        busy = _busy_ticks() - self._busy0
        own = (_own_ticks() - self._own0) + (self._child_ticks() - self._kids0)
        self.value = max(0.0, (busy - own) / elapsed) if elapsed > 0 else 0.0
        return self.value


def wait_until_idle(threshold: float = 0.15, window: float = 3.0, max_wait: float = 600.0) -> float:
    """Wait until other processes use under `threshold` CPUs over `window` seconds; return their last share."""
    deadline = time.monotonic() + max_wait
    while True:
        load = OtherLoad().start()
        time.sleep(window)
        share = load.stop()
        if share < threshold or time.monotonic() > deadline:
            return share
