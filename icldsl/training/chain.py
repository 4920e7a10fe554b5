"""Optimizers chained in one train block: each proposes from the states the one before it left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..datasets.base import Example
from ..runtime.program import Program
from ..runtime.state import StepState
from .context import Context, Optimizer
from .scored import Scored


@dataclass(frozen=True, slots=True)
class Chain(Optimizer):
    optimizers: tuple[Optimizer, ...]

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        current = dict(states)
        for optimizer in self.optimizers:
            current = await optimizer.propose(current, scored, ctx)
        return current

    def needs_runs(self, program: Program, train: Sequence[Example]) -> bool:
        """Whether any optimizer of the chain learns from the program's runs."""
        return any(o.needs_runs(program, train) for o in self.optimizers)

    def planned_calls(self, *, train: int, validation: int, epochs: int, batches: int, lm_steps: int) -> int:
        """The calls of all its optimizers."""
        return sum(o.planned_calls(train=train, validation=validation, epochs=epochs, batches=batches,
                                   lm_steps=lm_steps) for o in self.optimizers)

    def max_examples(self) -> int:
        """The most any of its optimizers gives a step."""
        return max((o.max_examples() for o in self.optimizers), default=0)

    def members(self) -> tuple[Optimizer, ...]:
        return tuple(m for o in self.optimizers for m in o.members())
