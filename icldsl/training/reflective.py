"""`reflective`: instructions proposed by an LM that reflects on failures and the
reward's feedback, kept on a Pareto front of per-example winners (in the spirit of
DSPy's GEPA)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..runtime.state import StepState
from .context import Context, Optimizer
from .instructions import Candidate, Pool, ask_instructions, choose, describe_step, predictions
from .optimizers import check_options, declared
from .scored import Scored
from .resources import BoundLM

_DEFAULT = declared("reflective")


class Reflection(BaseModel):
    reflection: str = Field(description="Why the low-rewarded predictions went wrong, what the feedback asks for, "
                                        "and what the instructions should say instead")
    instructions: str = Field(description="The improved instructions of the step, complete, as its LM will read them")


REFLECT = """You improve the instructions of one step of an LM program by reflecting on how it did. The step's LM reads its instructions, then a JSON input with the `input_fields` of `step`, and answers with a JSON object of its `output_fields`.

You see the `current_instructions` and the step's `predictions` on a few training examples: for each, its input, its output (or its error), the program's output when it differs, the output expected, the reward (1 is the best) and, when there is one, the reward's feedback saying what was wrong.

First reflect: what do the low-rewarded predictions get wrong, what does the feedback ask for, what do the well-rewarded ones do right, and which facts about the task or rules for the answer the instructions should state. Then write improved instructions: complete (they replace the current ones), general (about every input of this kind, not only these), keeping what works, and stating the rules you found explicitly."""


def pareto_front(candidates: Sequence[Candidate]) -> list[Candidate]:
    """The candidates that are best (ties included) on at least one example; of those whose
    every such example another kept candidate also wins, the weakest (lowest mean, then
    newest) are dropped first. In id order."""
    if not candidates:
        return []
    best = [max(column) for column in zip(*(c.scores for c in candidates))]
    won = {c: {e for e, s in enumerate(c.scores) if s == best[e]} for c in candidates}
    front = [c for c in candidates if won[c]]
    for c in sorted(front, key=lambda c: (c.estimate.mean, -c.id)):
        if all(any(e in won[d] for d in front if d is not c) for e in won[c]):
            front.remove(c)
    return sorted(front, key=lambda c: c.id)


def wins(front: Sequence[Candidate]) -> list[int]:
    """How many examples each member of the front is best on."""
    best = [max(column) for column in zip(*(c.scores for c in front))]
    return [sum(s == b for s, b in zip(c.scores, best)) for c in front]


@dataclass
class Reflective(Optimizer):
    """Improves one step's instructions at a time from what an LM reads in failures.

    At the end of each epoch it makes `proposals` attempts, one after another. Each
    draws a parent from the Pareto front (weighted by how many sample examples it is
    best on) and takes the trainable steps in turn; the parent runs on a seeded
    minibatch of `minibatch_size` training examples (skipped when all earn 1), and
    the LM, at decoding temperature `temperature`, is shown that step's predictions
    there with their rewards and the reward's feedback, reflects, and writes new
    instructions. The child runs on the same minibatch and, when its total reward
    there beats the parent's, is scored on the sample (the validation set, or a fixed
    seeded sample of `sample_size` of it; the training set when there is none) and
    joins the Pareto front: the candidates best on at least one example (see
    `pareto_front`).

    Scores are taken under the few-shot examples of the incoming states (kept in
    the result, so it chains after `random_few_shot`); the front is scored again
    when those change. The program takes the candidate with the best mean only when
    it beats the incoming instructions by more than a standard error of their paired
    difference. A proposal the LM fails to make is counted and skipped. Each epoch's
    attempts, the front (size, wins, rewards with mean, std and n) and the comparison
    are recorded with `ctx.note`. The front lives as long as the fit.
    """

    lm: BoundLM
    proposals: int = _DEFAULT["proposals"]
    minibatch_size: int = _DEFAULT["minibatch_size"]
    temperature: float = _DEFAULT["temperature"]
    sample_size: int = _DEFAULT["sample_size"]
    _pool: Pool | None = field(default=None, init=False, repr=False)
    _front: list[Candidate] = field(default_factory=list, init=False, repr=False)
    _turn: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        check_options(self, "reflective")

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        if not ctx.end_of_epoch:
            return dict(states)
        if self._pool is None or self._pool.ctx is not ctx:
            self._pool, self._front, self._turn = Pool(ctx, states, self.sample_size, "reflective"), [], 0
        pool = self._pool
        if not pool.paths or not pool.sample or not ctx.train:
            return dict(states)
        incumbent, rescored = await pool.begin(states, self._front)
        front = pareto_front(list(dict.fromkeys([*self._front, incumbent])))
        failures_before = pool.failures
        attempts = []
        for _ in range(self.proposals):
            attempt, child = await self._attempt(pool, front, ctx)
            if child is not None:
                await pool.score(child)
                attempt["reward"] = child.estimate.to_json()
                front = pareto_front([*front, child])
            attempts.append(attempt)
        kept, comparison = choose(incumbent, front)
        self._front = front
        ctx.note({
            "optimizer": "reflective", "sample": len(pool.sample), "rescored": rescored, "proposals": attempts,
            "failures": pool.failures - failures_before, "candidates": len(pool.known), "front_size": len(front),
            "front": [{**c.summary(), "wins": w} for c, w in zip(front, wins(front))], **comparison,
        })
        return pool.states(kept)

    async def _attempt(self, pool: Pool, front: Sequence[Candidate], ctx: Context) -> tuple[dict[str, Any],
                                                                                            Candidate | None]:
        """One proposal: its record, and the child to score on the sample when it passed the minibatch."""
        weights = np.asarray(wins(front), dtype=float)
        parent = front[int(ctx.rng.choice(len(front), p=weights / weights.sum()))]
        i = self._turn % len(pool.paths)
        self._turn += 1
        path = pool.paths[i]
        attempt: dict[str, Any] = {"parent": parent.id, "step": path}
        size = min(self.minibatch_size, len(ctx.train))
        minibatch = [ctx.train[int(j)] for j in sorted(ctx.rng.choice(len(ctx.train), size, replace=False))]
        before = await ctx.evaluate(pool.states(parent), minibatch, f"reflective #{parent.id} minibatch")
        rows = predictions(before.scored, path)
        if all(s.reward >= 1.0 for s in before.scored) or not rows:
            return {**attempt, "skipped": "nothing to fix on the minibatch"}, None
        text = await ask_instructions(self.lm, Reflection, REFLECT, {
            "step": describe_step(ctx.program.spec, path),
            "current_instructions": parent.instructions[i],
            "predictions": rows,
        }, temperature=self.temperature, rng=ctx.rng)
        if text is None:
            pool.failures += 1
            return {**attempt, "skipped": "the LM gave no instructions"}, None
        child = pool.add((*parent.instructions[:i], text, *parent.instructions[i + 1:]), f"reflection on #{parent.id}")
        if child is None:
            return {**attempt, "skipped": "a candidate seen before"}, None
        after = await ctx.evaluate(pool.states(child), minibatch, f"reflective #{child.id} minibatch")
        totals = {"parent": sum(s.reward for s in before.scored), "child": sum(s.reward for s in after.scored)}
        attempt.update(id=child.id, minibatch=totals)
        if totals["child"] <= totals["parent"]:
            return {**attempt, "skipped": "no better on the minibatch"}, None
        return attempt, child

    def planned_calls(self, *, train: int, validation: int, epochs: int, batches: int, lm_steps: int) -> int:
        """At most: per proposal one LM call, the parent's and the child's runs on the minibatch
        and the child's on the sample; plus scoring the incumbent (first epoch) or re-scoring
        the front (later epochs, when the few-shot examples changed) on the sample."""
        if not train:
            return 0
        sample = min(self.sample_size, validation or train)
        minibatch = min(self.minibatch_size, train)
        per_proposal = 1 + (2 * minibatch + sample) * lm_steps
        rescoring = sum(1 if epoch == 1 else min(1 + self.proposals * (epoch - 1), sample)
                        for epoch in range(1, epochs + 1))
        return epochs * self.proposals * per_proposal + rescoring * sample * lm_steps
