"""What an optimizer sees when it proposes new step states (`Context`), and what every
optimizer answers (`Optimizer`, their base class)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Mapping, Sequence

import numpy as np

from ..datasets.base import Example
from ..runtime.program import Program
from ..runtime.state import StepState
from .history import Evaluation
from .scored import Scored
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


class Optimizer(ABC):
    """The base class of every optimizer: what the trainer and `icldsl plan` call.

    A subclass must define `propose`; the other methods have defaults that fit an
    optimizer which learns from the program's training runs, makes no LM calls of its
    own and gives no step few-shot examples. An optimizer that does otherwise overrides
    the method that says so: the trainer's schedule (`trainer.Schedule`), which
    `icldsl plan` shows, is built from their answers.
    """

    __slots__ = ()

    @abstractmethod
    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        """New step states, from `states` and the epoch's `scored` training runs so far; called
        after each batch (`ctx.end_of_epoch` set after the last one), or once per epoch with no
        runs when `needs_runs` is false."""

    def needs_runs(self, program: Program, train: Sequence[Example]) -> bool:
        """Whether training must run the program on the training examples for this optimizer
        (default: it must). False when it learns from the data alone: unless the fit monitors a
        training metric, the trainer then calls `propose` once per epoch without running the
        program on the training examples (`trainer.Schedule`)."""
        return True

    def planned_calls(self, *, train: int, validation: int, epochs: int, batches: int, lm_steps: int) -> int:
        """At most how many LM calls it makes over the whole fit beyond the trainer's own runs
        (candidates it scores, its own LM's proposals), given the sizes of the training and
        validation sets, the epochs, the batches per epoch and the LM calls one program run
        makes (default: none)."""
        return 0

    def max_examples(self) -> int:
        """The most few-shot examples it gives a step (default: none; `icldsl plan` counts
        each trained step's prompt with this many)."""
        return 0

    def members(self) -> tuple[Optimizer, ...]:
        """The optimizers it is made of, in order: itself, or a chain's (`icldsl plan` shows
        each one's calls)."""
        return (self,)
