"""The machine the local model runs on: whether llama.cpp's extra buffer types are safe
on this CPU, and how many threads it should get."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Callable

TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def advertises_amx(cpuinfo: str) -> bool:
    """Whether a /proc/cpuinfo text lists an AMX flag (amx_tile, amx_int8, amx_bf16, ...)."""
    return any(flag.startswith("amx")
               for line in cpuinfo.splitlines() if line.startswith("flags")
               for flag in line.partition(":")[2].split())


def extra_buffer_types() -> bool:
    """Whether llama.cpp may put weights in its extra buffer types on this machine.

    They hold the repacked weights its batched kernels read, and its AMX
    buffer type, with which default builds crash on the first decode on CPUs
    that advertise AMX. So they are on only where /proc/cpuinfo shows a CPU
    without AMX; where it cannot be read, off.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return False
    return "flags" in cpuinfo and not advertises_amx(cpuinfo)


def default_threads() -> int:
    """Half the logical CPUs: the physical cores on SMT machines."""
    return max(1, (os.cpu_count() or 2) // 2)


class ThreadChoice:
    """How many threads llama.cpp gets for the next decode.

    llama.cpp's threads wait for each other at every operation, so one thread
    preempted by another process stalls them all: on a 2-core machine with one
    core busy elsewhere, 2 threads decode 3 to 5 times slower than 1. Unless the
    count is fixed, it follows the CPUs other processes leave free, read from
    /proc/stat at most once a second (elsewhere than Linux: half the CPUs).
    Thread counts do not change what llama.cpp computes, only how fast.
    """

    INTERVAL = 1.0  # seconds between readings
    FIRST = 0.1  # seconds from the reading taken at construction to the first choice
    SLACK = 0.25  # CPUs other processes may use before a thread is given up to them

    def __init__(self, fixed: int | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.cpus = os.cpu_count() or 1
        self.fixed = fixed
        self.clock = clock
        self.current = fixed or default_threads()
        self._wait = self.FIRST
        # When, machine busy ticks, own CPU seconds: read now, so that a choice made
        # once the model is loaded already sees the machine's load.
        self._last: tuple[float, int, float] | None = None if fixed else self._read(clock())

    def pick(self) -> int:
        if self.fixed:
            return self.fixed
        now = self.clock()
        if self._last is not None and now - self._last[0] < self._wait:
            return self.current
        reading = self._read(now)
        if reading is None:
            return self.current
        if self._last is not None:
            then, busy_then, own_then = self._last
            others = ((reading[1] - busy_then) / TICKS - (reading[2] - own_then)) / (now - then)
            self.current = self.choose(others)
            self._wait = self.INTERVAL
        self._last = reading
        return self.current

    @staticmethod
    def _read(now: float) -> tuple[float, int, float] | None:
        try:
            with open("/proc/stat") as f:
                fields = [int(x) for x in f.readline().split()[1:8]]
        except (OSError, ValueError):
            return None
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        return now, busy, sum(os.times()[:2])

    def choose(self, others: float) -> int:
        """Threads for the CPUs that `others` (CPUs busy with other processes) leave free."""
        return max(1, min(self.cpus, self.cpus - math.ceil(others - self.SLACK)))
