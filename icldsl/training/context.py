"""What an optimizer sees when it proposes new step states."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Protocol, Sequence

import numpy as np

from ..datasets.base import Example
from ..runtime.program import Program
from ..runtime.state import StepState
from .history import Evaluation
from .records import Scored
from .resources import Resources
from .rewards import Reward


@dataclass
class Context:
    """The trainer's state, handed to `Optimizer.propose` after each batch.

    `evaluate(states, examples, label)` scores candidate states (its LM calls count
    in the fit's usage and budget); `note(event)` records what the optimizer did
    (candidates compared, sample sizes, spreads) in the fit's history; `resources`
    gives the file's other LMs and embedding models.
    """

    program: Program
    reward: Reward
    train: Sequence[Example]
    validation: Sequence[Example]
    rng: np.random.Generator
    resources: Resources
    evaluate: Callable[[Mapping[str, StepState], Sequence[Example], str], Awaitable[Evaluation]]
    epoch: int = 1
    end_of_epoch: bool = False
    events: list[dict[str, Any]] = field(default_factory=list)

    def note(self, event: Mapping[str, Any]) -> None:
        self.events.append({"epoch": self.epoch, **event})


class Optimizer(Protocol):
    """Proposes new step states after each batch. It may also have `needs_runs(program, train)
    -> bool`: false when it learns from the data alone, so training need not run the program
    on the training examples (see `learns_from_runs`)."""

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]: ...


def learns_from_runs(optimizer: Optimizer, program: Program, train: Sequence[Example]) -> bool:
    """Whether training must run the program on the training examples for `optimizer`:
    unless it says otherwise with `needs_runs`, it must."""
    asks = getattr(optimizer, "needs_runs", None)
    return True if asks is None else bool(asks(program, train))
