"""`omega`: evolutionary instruction optimization, in the spirit of Synalinks' OMEGA.

A population of instruction sets evolves once per epoch. Children come from an LM
that rewrites one step's instructions shown the step and the epoch's failing
predictions (mutation), or merges two parents' instructions (crossover); every
child is scored on the same fixed sample as its rivals; the fitter candidates
survive, with near-duplicates of kept ones (by embedding similarity) penalised so
the population stays diverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from pydantic import BaseModel, Field

from ..lm.base import Embedder, LMError
from ..runtime.state import StepState
from .context import Context, Optimizer
from .instructions import Candidate, Pool, ask_instructions, choose, describe_step, worst
from .optimizers import check_options, declared
from .scored import Scored
from .resources import BoundLM

_DEFAULT = declared("omega")


class Mutation(BaseModel):
    diagnosis: str = Field(description="What the failing predictions have in common, and what the instructions "
                                       "miss that would fix it")
    instructions: str = Field(description="The new instructions of the step, complete, as its LM will read them")


class Crossover(BaseModel):
    comparison: str = Field(description="What each version does well, and what the failing predictions still need")
    instructions: str = Field(description="The merged instructions of the step, complete, as its LM will read them")


MUTATE = """You improve the instructions of one step of an LM program. The step's LM reads its instructions, then a JSON input with the `input_fields` of `step`, and answers with a JSON object of its `output_fields`.

You see the `current_instructions` and `predictions` the program got wrong: for each, the step's input, its output (or its error), the program's output when it differs, the output expected, the reward (1 is the best) and, when there is one, the reward's feedback.

Work out what the wrong predictions have in common and what rule, fact or format the instructions miss. Then write new instructions that fix it: complete (they replace the current ones), general (about every input of this kind, not only these), keeping what the current instructions get right, and no longer than they need to be. Do not copy the expected answers of these examples into them."""

CROSS = """You merge two versions of the instructions of one step of an LM program. The step's LM reads its instructions, then a JSON input with the `input_fields` of `step`, and answers with a JSON object of its `output_fields`.

You see the `first` and the `second` version, each with its mean reward on the same examples (1 is the best), and `predictions` the program still gets wrong: for each, the step's input, its output (or its error), the program's output when it differs, the output expected, the reward and, when there is one, the reward's feedback.

Write one version that keeps what makes each of them work: keep every rule that helps, merge rules that say the same thing, prefer the better version where they disagree, and fix what the failing predictions show. It must be complete (it replaces both) and no longer than the longer of the two."""


@dataclass
class Omega(Optimizer):
    """Evolves each trainable step's instructions; keeps the few-shot examples it is given
    (so it chains after `random_few_shot`).

    It acts at the end of each epoch (not after every batch, to bound the cost), when
    some training prediction earned less than 1, and makes `children` candidates one
    after another: mutations, and from the second on,
    when the population holds two candidates, every second one is a crossover. A
    parent is drawn by rank (linear weights: the best `n` times the worst's). A
    mutation rewrites one step chosen at random among those that failed, shown
    `nb_failures` of the epoch's lowest-rewarded training predictions; a crossover
    merges the parents' texts of one step where they differ, the child taking each
    other differing step from either parent by a seeded coin. `mutation_temperature`
    and `crossover_temperature` are the decoding temperatures of those requests
    (each with its own seed drawn from the fit's rng).

    Every candidate is scored on the same sample: the validation set, or a fixed
    seeded sample of `sample_size` of it (the training set when there is no
    validation), under the few-shot examples of the incoming states; survivors are
    scored again when those examples change. The program takes the best candidate
    only when it beats the incoming instructions by more than a standard error of
    their paired difference. The next population is that candidate plus, up to
    `population_size`, the candidates with the best mean reward minus `diversity`
    times their greatest cosine similarity (over the steps' instruction embeddings,
    averaged) to those already kept. A proposal the LM fails to make is counted and
    skipped. Every epoch's candidates, rewards (mean, std, n) and the comparison are
    recorded with `ctx.note`. The population lives as long as the fit.
    """

    lm: BoundLM
    embedding: Embedder
    population_size: int = _DEFAULT["population_size"]
    children: int = _DEFAULT["children"]
    mutation_temperature: float = _DEFAULT["mutation_temperature"]
    crossover_temperature: float = _DEFAULT["crossover_temperature"]
    diversity: float = _DEFAULT["diversity"]
    sample_size: int = _DEFAULT["sample_size"]
    nb_failures: int = _DEFAULT["nb_failures"]
    _pool: Pool | None = field(default=None, init=False, repr=False)
    _population: list[Candidate] = field(default_factory=list, init=False, repr=False)
    _vectors: dict[str, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        check_options(self, "omega")

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        if not ctx.end_of_epoch:
            return dict(states)
        if self._pool is None or self._pool.ctx is not ctx:
            self._pool, self._population = Pool(ctx, states, self.sample_size, "omega"), []
        pool = self._pool
        if not pool.paths or not pool.sample:
            return dict(states)
        if not any(s.reward < 1.0 and any(path in s.trace.steps for path in pool.paths) for s in scored):
            ctx.note({"optimizer": "omega", "skipped": "no failing training prediction reached a trainable step"})
            return dict(states)
        incumbent, rescored = await pool.begin(states, self._population)
        population = list(dict.fromkeys([incumbent, *self._population]))
        failures_before = pool.failures
        proposals = []
        for k in range(self.children):
            crossover = k % 2 == 1 and len(population) >= 2
            proposal, child = await (self._crossover if crossover else self._mutation)(pool, population, scored, ctx)
            if child is not None:
                await pool.score(child)
                population.append(child)
                proposal["reward"] = child.estimate.to_json()
            proposals.append(proposal)
        kept, comparison = choose(incumbent, population)
        self._population = [kept, *await self._diverse(population, kept)]
        ctx.note({
            "optimizer": "omega", "sample": len(pool.sample), "rescored": rescored, "proposals": proposals,
            "failures": pool.failures - failures_before, **comparison,
            "population": [c.summary() for c in self._population],
        })
        return pool.states(kept)

    def _parents(self, population: Sequence[Candidate], k: int, rng: np.random.Generator) -> list[Candidate]:
        ranked = sorted(population, key=lambda c: (-c.estimate.mean, c.id))
        weights = np.arange(len(ranked), 0, -1, dtype=float)
        return [ranked[int(i)] for i in rng.choice(len(ranked), k, replace=False, p=weights / weights.sum())]

    async def _mutation(self, pool: Pool, population: Sequence[Candidate], scored: Sequence[Scored],
                        ctx: Context) -> tuple[dict[str, Any], Candidate | None]:
        failing = [i for i, path in enumerate(pool.paths) if any(s.reward < 1.0 and path in s.trace.steps
                                                                 for s in scored)]
        (parent,) = self._parents(population, 1, ctx.rng)
        i = failing[int(ctx.rng.integers(len(failing)))]
        path = pool.paths[i]
        text = await ask_instructions(self.lm, Mutation, MUTATE, {
            "step": describe_step(ctx.program.spec, path),
            "current_instructions": parent.instructions[i],
            "predictions": worst(scored, path, self.nb_failures, ctx.rng),
        }, temperature=self.mutation_temperature, rng=ctx.rng)
        return self._child(pool, "mutation", [parent], path, text, (*parent.instructions[:i], text,
                                                                    *parent.instructions[i + 1:]))

    async def _crossover(self, pool: Pool, population: Sequence[Candidate], scored: Sequence[Scored],
                         ctx: Context) -> tuple[dict[str, Any], Candidate | None]:
        first, second = self._parents(population, 2, ctx.rng)
        differing = [i for i, (a, b) in enumerate(zip(first.instructions, second.instructions)) if a != b]
        i = differing[int(ctx.rng.integers(len(differing)))]
        path = pool.paths[i]
        text = await ask_instructions(self.lm, Crossover, CROSS, {
            "step": describe_step(ctx.program.spec, path),
            "first": {"instructions": first.instructions[i], "mean_reward": first.estimate.mean},
            "second": {"instructions": second.instructions[i], "mean_reward": second.estimate.mean},
            "predictions": worst(scored, path, self.nb_failures, ctx.rng),
        }, temperature=self.crossover_temperature, rng=ctx.rng)
        inherited = [a if a == b or ctx.rng.random() < 0.5 else b
                     for a, b in zip(first.instructions, second.instructions)]
        return self._child(pool, "crossover", [first, second], path, text, (*inherited[:i], text, *inherited[i + 1:]))

    @staticmethod
    def _child(pool: Pool, operator: str, parents: Sequence[Candidate], path: str, text: str | None,
               instructions: tuple[str, ...]) -> tuple[dict[str, Any], Candidate | None]:
        """The proposal's record, and the new candidate (None when the LM failed or repeated one)."""
        proposal: dict[str, Any] = {"operator": operator, "parents": [p.id for p in parents], "step": path}
        if text is None:
            pool.failures += 1
            return {**proposal, "skipped": "the LM gave no instructions"}, None
        child = pool.add(instructions, f"{operator} of " + " and ".join(f"#{p.id}" for p in parents))
        if child is None:
            return {**proposal, "skipped": "a candidate seen before"}, None
        return {**proposal, "id": child.id}, child

    async def _diverse(self, population: Sequence[Candidate], kept: Candidate) -> list[Candidate]:
        """Up to `population_size - 1` others: each time the best mean reward minus `diversity`
        times the greatest similarity to those kept so far (no penalty if embedding fails)."""
        rest = sorted((c for c in population if c is not kept), key=lambda c: (-c.estimate.mean, c.id))
        similarity = await self._similarity(population)
        chosen = [kept]
        while rest and len(chosen) < self.population_size:
            best = max(rest, key=lambda c: c.estimate.mean - self.diversity * max(similarity(c, k) for k in chosen))
            chosen.append(best)
            rest.remove(best)
        return chosen[1:]

    async def _similarity(self, population: Sequence[Candidate]) -> Callable[[Candidate, Candidate], float]:
        """Cosine similarity of two candidates' instructions, averaged over the steps (embeddings cached)."""
        texts = list(dict.fromkeys(t for c in population for t in c.instructions if t not in self._vectors))
        try:
            vectors = await self.embedding.embed(texts) if texts else []
        except LMError:
            return lambda a, b: 0.0
        for text, vector in zip(texts, vectors):
            v = np.asarray(vector, dtype=float)
            self._vectors[text] = v / (np.linalg.norm(v) or 1.0)

        def similarity(a: Candidate, b: Candidate) -> float:
            return float(np.mean([self._vectors[x] @ self._vectors[y] for x, y in zip(a.instructions, b.instructions)]))

        return similarity

    def planned_calls(self, *, train: int, validation: int, epochs: int, batches: int, lm_steps: int) -> int:
        """At most: one LM call per child, plus the program runs of scoring the incumbent (first
        epoch) or re-scoring the survivors (later epochs, when the few-shot examples changed)
        and every child, on the sample."""
        sample = min(self.sample_size, validation or train)
        scorings = sum((1 if epoch == 1 else min(self.population_size, 1 + self.children * (epoch - 1)))
                       + self.children for epoch in range(1, epochs + 1))
        return epochs * self.children + scorings * sample * lm_steps
