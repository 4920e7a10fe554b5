"""What the three tools' runners share (standard library only: each runs in its tool's own
virtual environment).

A runner is started once per (tool, task, repetition) as

    <venv python> bench/training/run_<tool>.py CONFIG.json RESULT.json

CONFIG holds the task (its fields, instructions, reward fields), the rows (`train`:
the training rows every tool gets; `fit` and `val`: the same rows split as icldsl
splits them, for Synalinks; `test`), the LM settings and the base URL of the
benchmark's server, and the training settings (seed, epochs, batch size,
concurrency, number of few-shot examples). The runner writes RESULT: its
predictions on the test rows before and after training (one output dict, or null
for a failed prediction, per test row, in order), the reward its own tool reported,
the seconds of each phase, and the examples training put in the prompt. Whatever
the tool prints goes to stderr.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable


def load_config() -> dict[str, Any]:
    with open(sys.argv[1]) as f:
        return json.load(f)


def quiet_stdout() -> None:
    """Send anything written to stdout to stderr: the runner's output is its RESULT file."""
    os.dup2(2, 1)
    sys.stdout = sys.stderr


class Phases:
    """Seconds spent in each phase: untrained evaluation, training, trained evaluation."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.spans: list[tuple[str, float, float]] = []  # (phase, start, end) in time.time(), for the server's log
        self._name: str | None = None
        self._start = 0.0
        self._wall = 0.0

    def start(self, name: str) -> None:
        now, wall = time.perf_counter(), time.time()
        if self._name is not None:
            self.seconds[self._name] = self.seconds.get(self._name, 0.0) + now - self._start
            self.spans.append((self._name, self._wall, wall))
        self._name, self._start, self._wall = name, now, wall

    def stop(self) -> None:
        self.start("")
        self._name = None
        self.seconds.pop("", None)

    def follow_fit(self, label: str, done: int, total: int, reward: float, *, cache_hits: int = 0) -> None:
        """icldsl's `fit_compiled` progress callback: each pass over the test rows is its own
        phase, and everything between them is training."""
        if done == 0:
            self.start({"test (untrained)": "untrained_eval", "test (trained)": "trained_eval"}.get(label, "train"))


def write_icl_task(folder: str, config: dict[str, Any], source: str) -> Path:
    """icldsl's runners: the `.icl` source in `folder`, beside the config's train and test rows
    as the `train.jsonl` and `test.jsonl` its `data` block reads; the source's path."""
    for name in ("train", "test"):
        (Path(folder) / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in config[name]))
    path = Path(folder) / "task.icl"
    path.write_text(source)
    return path


def peak_rss_kb() -> int | None:
    """This process's peak resident memory (VmHWM), in kB.

    Not getrusage's ru_maxrss: on Linux a process started with fork or vfork and
    exec keeps the high-water mark of its parent's memory through the exec, so a
    small child of a large parent reports the parent's size.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def write_result(result: dict[str, Any]) -> None:
    result["peak_rss_kb"] = peak_rss_kb()
    result["ru_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(sys.argv[2], "w") as f:
        json.dump(result, f, indent=1, default=str)


def main(run: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    quiet_stdout()
    config = load_config()
    started = time.perf_counter()
    result = run(config)
    result["run_seconds"] = time.perf_counter() - started
    write_result(result)
