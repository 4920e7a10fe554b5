"""The CSV log callback: one row per epoch, rewritten whole after each (Keras's CSVLogger)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Mapping

from ..paths import write_atomic
from ..runtime.state import StepState
from .history import History


class CSVLog:
    """Writes `epoch` and every history key to `path` after each epoch, atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, epoch: int, logs: Mapping[str, float], states: Mapping[str, StepState],
                 history: History) -> None:
        keys = list(history.history)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["epoch", *keys])
        for i in range(history.epochs_run):
            writer.writerow([i + 1, *(_cell(history.history[k], i) for k in keys)])
        write_atomic(self.path, out.getvalue())


def _cell(values: list[float], i: int) -> str:
    return f"{values[i]:.6g}" if i < len(values) else ""
