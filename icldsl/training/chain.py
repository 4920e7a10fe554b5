"""Optimizers chained in one train block: each proposes from the states the one before it left."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..datasets.base import Example
from ..runtime.program import Program
from ..runtime.state import StepState
from .context import Context, Optimizer, learns_from_runs
from .records import Scored


@dataclass(frozen=True, slots=True)
class Chain:
    optimizers: tuple[Optimizer, ...]

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        current = dict(states)
        for optimizer in self.optimizers:
            current = await optimizer.propose(current, scored, ctx)
        return current

    def needs_runs(self, program: Program, train: Sequence[Example]) -> bool:
        """Whether any optimizer of the chain learns from the program's runs."""
        return any(learns_from_runs(o, program, train) for o in self.optimizers)
