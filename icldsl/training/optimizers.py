"""Optimizers: propose new trainable variables for each step from scored runs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from ..options import Function, Signature
from ..runtime.state import Demo, StepState
from .context import Context
from .records import Scored


@dataclass(frozen=True, slots=True)
class RandomFewShot:
    """Each step's few-shot examples are drawn from the epoch's scored predictions.

    Between `nb_min_examples` and `nb_max_examples` examples per step, taken from
    the best-rewarded predictions first (ties broken at random). Failed
    predictions never become examples. Makes no LM calls.
    """

    nb_min_examples: int = 1
    nb_max_examples: int = 3

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        rng = ctx.rng
        proposed = {}
        for path, state in states.items():
            if state.frozen:
                proposed[path] = state
                continue
            pool = [
                Demo(record.inputs, record.output, s.reward, s.example.origin)
                for s in scored
                if (record := s.trace.steps.get(path)) is not None and record.output is not None
            ]
            low = min(self.nb_min_examples, len(pool))
            high = min(self.nb_max_examples, len(pool))
            k = int(rng.integers(low, high + 1)) if high > 0 else 0
            tiebreak = rng.random(len(pool))
            order = sorted(range(len(pool)), key=lambda i: (-pool[i].reward, tiebreak[i]))
            proposed[path] = state.with_examples(tuple(pool[i] for i in order[:k]))
        return proposed


OPTIMIZERS: Mapping[str, Function] = {
    "random_few_shot": Function(
        Signature(
            {"nb_min_examples": int, "nb_max_examples": int},
            doc="few-shot examples drawn from the best-rewarded predictions of each epoch",
        ),
        RandomFewShot,
    ),
}
