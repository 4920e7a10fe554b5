"""What evaluating and fitting leave: an Evaluation (scored predictions and their mean reward)
and the History of a fit (per-epoch logs, Keras-style, and what training spent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .scored import Scored
from .usage import CallStats, UsageTable


@dataclass(frozen=True, slots=True)
class Evaluation:
    reward: float
    scored: tuple[Scored, ...]

    @property
    def failures(self) -> int:
        return sum(s.trace.output is None for s in self.scored)

    @property
    def usage(self) -> CallStats:
        return CallStats.of(self.scored)

    @property
    def usage_table(self) -> UsageTable:
        return UsageTable.of(self.scored)


@dataclass(slots=True)
class History:
    """Per-epoch logs, Keras-style: `reward`, `<metric>`, `val_reward`, `val_<metric>`.

    `events` records what optimizers did (candidates compared, on how many examples,
    with what spread); `stopped` why training ended before its last epoch, if it did.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    initial: dict[str, float] = field(default_factory=dict)  # validation logs before training
    best_epoch: int = 0  # 0: the untrained program was never beaten
    usage_table: UsageTable = field(default_factory=UsageTable)  # LM usage of training and validation
    validation: Evaluation | None = None  # the kept states' validation predictions (not saved)
    events: list[dict] = field(default_factory=list)
    stopped: str | None = None
    epochs_run: int = 0

    @property
    def usage(self) -> CallStats:
        return self.usage_table.total

    @property
    def initial_val_reward(self) -> float | None:
        return self.initial.get("val_reward")

    def log(self, logs: Mapping[str, float]) -> None:
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
