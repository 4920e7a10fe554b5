"""The fit's checkpoint: written after every epoch, read to resume an interrupted fit.

It holds what the next epoch needs (the current and best states, the random
generator, the history) and the fingerprint of what produced it (source, train
settings, data), so a checkpoint of another fit is never resumed.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..jsontext import JSONTextError, loads
from ..paths import write_atomic
from ..runtime.state import StepState
from .history import History
from .usage import UsageTable

log = logging.getLogger(__name__)
FORMAT = "icldsl-checkpoint"


def _states(states: Mapping[str, StepState]) -> dict:
    return {path: state.to_json() for path, state in sorted(states.items())}


class CheckpointWriter:
    """An epoch-end callback that writes the checkpoint atomically to `path`."""

    def __init__(self, path: Path, fingerprint: Mapping[str, Any], rng: np.random.Generator, monitor: str,
                 best_states: Mapping[str, StepState] | None = None):
        self.path, self.fingerprint, self.rng, self.monitor = path, dict(fingerprint), rng, monitor
        self.best_states = best_states  # None: the untrained states are still the best

    def __call__(self, epoch: int, logs: Mapping[str, float], states: Mapping[str, StepState],
                 history: History) -> None:
        if history.best_epoch == epoch:
            self.best_states = states
        doc = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": epoch,
            "states": _states(states),
            "best_states": None if self.best_states is None else _states(self.best_states),
            "best": _best(history, self.monitor),
            "rng": self.rng.bit_generator.state,
            "history": history.history,
            "initial": history.initial,
            "best_epoch": history.best_epoch,
            "events": history.events,
            "usage": history.usage_table.to_json(),
        }
        # Not sorted: the states' examples keep the field order the program sends them in.
        write_atomic(self.path, json.dumps(doc, indent=1) + "\n")


def _best(history: History, monitor: str) -> float | None:
    if history.best_epoch:
        return history.history[monitor][history.best_epoch - 1]
    return history.initial.get(monitor)


@dataclass(frozen=True, slots=True)
class Resume:
    """A checkpoint read back; `restore` puts it into a fresh history and generator."""

    doc: Mapping[str, Any]
    untrained: Mapping[str, StepState]

    @property
    def epoch(self) -> int:
        return int(self.doc["epoch"])

    def best_states(self) -> dict[str, StepState] | None:
        """The best epoch's states; None while the untrained states are the best."""
        saved = self.doc["best_states"]
        return None if saved is None else {p: StepState.from_json(s) for p, s in saved.items()}

    def restore(self, history: History, rng: np.random.Generator
                ) -> tuple[dict[str, StepState], Mapping[str, StepState], float | None, int]:
        """(states, best states, best monitored value, first epoch to run)."""
        doc = self.doc
        history.history = {k: list(v) for k, v in doc["history"].items()}
        history.initial = dict(doc["initial"])
        history.best_epoch = int(doc["best_epoch"])
        history.epochs_run = self.epoch
        history.events[:] = list(doc["events"])
        history.usage_table = UsageTable.from_json(doc["usage"])
        rng.bit_generator.state = doc["rng"]
        states = {p: StepState.from_json(s) for p, s in doc["states"].items()}
        return states, self.best_states() or dict(self.untrained), doc["best"], self.epoch + 1


def read_checkpoint(path: Path, fingerprint: Mapping[str, Any],
                    untrained: Mapping[str, StepState]) -> Resume | None:
    """The checkpoint at `path` if it belongs to this fit; None (and a log line) if not."""
    if not path.exists():
        return None
    try:
        doc = loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, JSONTextError) as exc:  # NaN too: the fit starts over rather than fail
        log.warning("ignoring unreadable checkpoint %s: %s", path, exc)
        return None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("fingerprint") != json.loads(json.dumps(dict(fingerprint))):
        log.warning("ignoring checkpoint %s: it belongs to another fit (source, settings or data differ)", path)
        return None
    return Resume(doc, untrained)
