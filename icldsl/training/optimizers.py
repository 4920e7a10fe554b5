"""Few-shot optimizers: each step's examples come from the program's own scored runs
(or, for `labeled_few_shot`, from the training data's expected outputs).

A step's example is its own input and output in one run, rewarded with the reward
that whole run earned, and named after the dataset row it answered. Failed step
runs never become examples, frozen steps are left alone, a row gives a step at most
one example, and every random draw comes from the trainer's seeded generator.

Each subclasses `context.Optimizer`; `planned_calls` tells `icldsl plan` how many LM
calls it makes beyond the program's own training runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import typing
from dataclasses import dataclass
from itertools import islice
from typing import Any, Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from ..datasets.base import Example
from ..runtime.program import Program
from ..runtime.state import Demo, StepState
from .context import Context, Optimizer
from .estimate import Estimate, paired, refusal
from .scored import Scored
from ..language.catalogue.training import OPTIMIZERS

T = TypeVar("T", Demo, Scored)


def step_demo(run: Scored, path: str) -> Demo | None:
    """Step `path`'s input and output in `run`; None when the step did not run or failed."""
    record = run.trace.steps.get(path)
    if record is None or record.output is None:
        return None
    return Demo(record.inputs, record.output, run.reward, run.example.origin)


def best_per_row(items: Iterable[T], origin: Callable[[T], str]) -> list[T]:
    """The best-rewarded item of each dataset row, in the order rows first appear."""
    best: dict[str, T] = {}
    for item in items:
        key = origin(item)
        if key not in best or item.reward > best[key].reward:
            best[key] = item
    return list(best.values())


def _count(rng: np.random.Generator, low: int, high: int, available: int) -> int:
    """How many examples to take: uniform between `low` and `high`, at most `available`."""
    return int(rng.integers(min(low, available), min(high, available) + 1))


def check_options(made: Any, name: str) -> None:
    """Refuse (ValueError) an option of optimizer `name` (a dataclass), or options that cannot
    work together, as the checker refuses them: by their one declaration
    (`language/catalogue/training.py`)."""
    function = OPTIMIZERS[name]
    values = {f.name: getattr(made, f.name) for f in dataclasses.fields(made) if f.name in function.signature.options}
    function.signature.check(name, values)
    for _, message in function.problems(values):
        raise ValueError(f"{name}: {message}")


def declared(name: str) -> dict[str, Any]:
    """The declared defaults of optimizer `name`'s options, which its fields take."""
    return dict(OPTIMIZERS[name].signature.defaults)


_RANDOM, _BOOTSTRAP, _LABELED = (declared(name) for name in ("random_few_shot", "bootstrap_few_shot",
                                                             "labeled_few_shot"))


@dataclass(frozen=True, slots=True)
class RandomFewShot(Optimizer):
    """Each step's examples are drawn from its successful predictions of the epoch so far.

    Between `nb_min_examples` and `nb_max_examples` per step, after every batch.
    `sampling` orders the pool: `best` by reward, ties at random; `random` uniformly;
    `softmax` draws without replacement with weights exp(reward / temperature).

    `best` is the default because with a right-or-wrong reward it picks uniformly among
    the right predictions, so no wrong answer is shown as an example while enough right
    ones exist; `random` and `softmax` mix in worse predictions, which only helps when
    graded rewards make near-best examples worth exploring. `temperature` 0.3 makes a
    reward of 1 about 28 times as likely as a reward of 0. Makes no LM calls.
    """

    nb_min_examples: int = _RANDOM["nb_min_examples"]
    nb_max_examples: int = _RANDOM["nb_max_examples"]
    sampling: str = _RANDOM["sampling"]
    temperature: float = _RANDOM["temperature"]

    def __post_init__(self) -> None:
        check_options(self, "random_few_shot")

    def max_examples(self) -> int:
        return self.nb_max_examples

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        proposed = dict(states)
        for path, state in states.items():
            if state.frozen:
                continue
            pool = best_per_row((d for s in scored if (d := step_demo(s, path)) is not None), lambda d: d.origin)
            if not pool:
                continue
            k = _count(ctx.rng, self.nb_min_examples, self.nb_max_examples, len(pool))
            order = self._order(np.array([d.reward for d in pool]), ctx.rng)
            proposed[path] = state.with_examples(tuple(pool[i] for i in order[:k]))
        return proposed

    def _order(self, rewards: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.sampling == "random":
            return rng.permutation(len(rewards))
        if self.sampling == "best":
            return np.lexsort((rng.random(len(rewards)), -rewards))
        # Sorting by reward / temperature plus Gumbel noise gives the order of draws
        # without replacement with weights exp(reward / temperature) (the Gumbel-top-k trick).
        return np.argsort(-(rewards / self.temperature + rng.gumbel(size=len(rewards))), kind="stable")


@dataclass(frozen=True, slots=True)
class BootstrapFewShot(Optimizer):
    """Each step's examples are its own inputs and outputs in whole runs whose reward
    reached `threshold`.

    A set of examples takes k of those runs (k between `nb_min_examples` and
    `nb_max_examples`) and gives every step its record from each, so the steps of a
    multi-step program learn from the same runs, and a step's output becomes an
    example only when the run's final answer earned it.

    With `candidates: 1` the set is redrawn after every batch and makes no LM calls.
    With more, the states stay as they are during the epoch; at its end `candidates`
    distinct sets are scored on the same validation examples as the current states
    (all of them, or `compare_on` chosen by a hash of their origins, the same in
    every epoch), and the best replaces the current states only when it beats them by
    more than the standard error of the paired difference. Every comparison is noted
    with its sample size, means and standard errors.

    `threshold` 1.0 keeps only runs a right-or-wrong reward calls right; lower it for
    graded rewards. `candidates` defaults to 1 because each further candidate costs a
    pass over the compared examples every epoch (see `icldsl plan`).
    """

    nb_min_examples: int = _BOOTSTRAP["nb_min_examples"]
    nb_max_examples: int = _BOOTSTRAP["nb_max_examples"]
    threshold: float = _BOOTSTRAP["threshold"]
    candidates: int = _BOOTSTRAP["candidates"]
    compare_on: int = _BOOTSTRAP["compare_on"]

    def __post_init__(self) -> None:
        check_options(self, "bootstrap_few_shot")

    def max_examples(self) -> int:
        return self.nb_max_examples

    def planned_calls(self, *, train: int, validation: int, epochs: int, batches: int, lm_steps: int) -> int:
        """At most: each epoch scores the current states and every candidate on the compared examples."""
        if self.candidates == 1:
            return 0
        return epochs * (self.candidates + 1) * min(validation, self.compare_on) * lm_steps

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        runs = best_per_row((s for s in scored if s.trace.output is not None and s.reward >= self.threshold),
                             lambda s: s.example.origin)
        if self.candidates == 1:
            return self._draw(states, runs, ctx.rng)
        if not ctx.end_of_epoch:
            return dict(states)
        return await self._compare(states, runs, ctx)

    def _draw(self, states: Mapping[str, StepState], runs: Sequence[Scored],
              rng: np.random.Generator) -> dict[str, StepState]:
        """One candidate: k runs in a random order, each unfrozen step taking its records
        from them (from later runs when it did not run in one, as a branch arm may not)."""
        proposed = dict(states)
        if not runs:
            return proposed
        k = _count(rng, self.nb_min_examples, self.nb_max_examples, len(runs))
        order = rng.permutation(len(runs))
        for path, state in states.items():
            if state.frozen:
                continue
            demos = tuple(islice((d for i in order if (d := step_demo(runs[i], path)) is not None), k))
            if demos:
                proposed[path] = state.with_examples(demos)
        return proposed

    async def _compare(self, states: Mapping[str, StepState], runs: Sequence[Scored],
                       ctx: Context) -> dict[str, StepState]:
        reason = "no run reached the threshold" if not runs else "no candidate differs from the current states"
        drawn = distinct_draws(states, lambda: self._draw(states, runs, ctx.rng), self.candidates)
        return await compare_candidates(states, drawn, ctx, {"optimizer": "bootstrap_few_shot", "runs": len(runs)},
                                        compare_on=self.compare_on, empty=reason)


def distinct_draws(states: Mapping[str, StepState], draw: Callable[[], dict[str, StepState]],
                   candidates: int) -> list[dict[str, StepState]]:
    """Up to `candidates` draws that differ from each other and from the current states."""
    seen, drawn = {_key(states)}, []
    for _ in range(candidates):
        candidate = draw()
        if _key(candidate) not in seen:
            seen.add(_key(candidate))
            drawn.append(candidate)
    return drawn


async def compare_candidates(states: Mapping[str, StepState], drawn: Sequence[dict[str, StepState]],
                             ctx: Context, event: dict[str, Any], *, compare_on: int, empty: str,
                             describe: Callable[[Mapping[str, StepState]], dict[str, Any]] | None = None,
                             ) -> dict[str, StepState]:
    """Score candidate states and the current ones on the same validation examples (all, or
    `compare_on` picked by a hash of their origins, the same in every epoch), and return the
    best candidate only when it beats the current states by more than the standard error of
    the paired difference, on at least `estimate.MIN_COMPARED` examples (a win on fewer is
    noted as `refused`). The comparison is noted either way, each candidate as `describe`
    tells (default: the dataset rows its examples came from)."""
    drawn = [c for c in drawn if _key(c) != _key(states)]
    if not drawn:
        ctx.note({**event, "kept": False, "reason": empty})
        return dict(states)
    describe = describe or (lambda c: {"origins": _origins(c)})
    examples = _sample(ctx.validation, compare_on)
    if not examples:
        ctx.note({**event, "kept": True, "reason": "no validation examples: the first candidate is kept unscored"})
        return drawn[0]
    name = event["optimizer"]
    current = [s.reward for s in (await ctx.evaluate(states, examples, f"{name}: current")).scored]
    scores = []
    for i, candidate in enumerate(drawn, 1):
        evaluation = await ctx.evaluate(candidate, examples, f"{name}: candidate {i}/{len(drawn)}")
        scores.append([s.reward for s in evaluation.scored])
    best = max(range(len(drawn)), key=lambda i: Estimate.of(scores[i]).mean)
    refused = refusal(scores[best], current)
    kept = refused is None
    diff = paired(scores[best], current)
    few = not kept and diff.above()  # it won, on too few rows: say why it was refused
    ctx.note({
        **event, "compared_on": len(examples), "current": Estimate.of(current).to_json(),
        "candidates": [{**describe(c), **Estimate.of(s).to_json()} for c, s in zip(drawn, scores)],
        "best": best, "difference": diff.to_json(), "kept": kept,
        **({"refused": refused} if few else {}),
    })
    return drawn[best] if kept else dict(states)


def _sample(validation: Sequence[Example], compare_on: int) -> list[Example]:
    """The validation examples candidates are compared on, in their order: all, or
    `compare_on` of them picked by a hash of their origins."""
    if len(validation) <= compare_on:
        return list(validation)
    rank = sorted(range(len(validation)), key=lambda i: hashlib.sha256(validation[i].origin.encode()).digest())
    return [validation[i] for i in sorted(rank[:compare_on])]


@dataclass(frozen=True, slots=True)
class LabeledFewShot(Optimizer):
    """Each step's examples are rows of the training data with their expected outputs.

    Only a step that reads the program's input alone and whose answer the data holds
    in full (its fields are among the expected output's) learns this way; other steps
    keep their examples. With `balanced`, the examples of a step with an enum field
    take its labels in turn (as many of each as the count allows), shuffled. At the
    end of each epoch `candidates` distinct sets of between `nb_min_examples` and
    `nb_max_examples` rows are scored on the same validation examples as the current
    states, and the best replaces them only when it wins by more than the standard
    error of the paired difference (as `bootstrap_few_shot` does).

    Unlike the other few-shot optimizers it does not need the model to be right
    first: a model that never gives some label can still be shown it.
    """

    nb_min_examples: int = _LABELED["nb_min_examples"]
    nb_max_examples: int = _LABELED["nb_max_examples"]
    balanced: bool = _LABELED["balanced"]
    candidates: int = _LABELED["candidates"]
    compare_on: int = _LABELED["compare_on"]

    def __post_init__(self) -> None:
        check_options(self, "labeled_few_shot")

    def max_examples(self) -> int:
        return self.nb_max_examples

    def planned_calls(self, *, train: int, validation: int, epochs: int, batches: int, lm_steps: int) -> int:
        """At most: each epoch scores the current states and every candidate on the compared examples."""
        return epochs * (self.candidates + 1) * min(validation, self.compare_on) * lm_steps

    def needs_runs(self, program: Program, train: Sequence[Example]) -> bool:
        """None: the examples come from the data, not from the program's predictions."""
        return False

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        if not ctx.end_of_epoch:
            return dict(states)
        learnable = {path: found for path, state in states.items()
                     if not state.frozen and (found := labeled_fields(ctx.program, ctx.train, path)) is not None}
        if not learnable:
            ctx.note({"optimizer": "labeled_few_shot", "kept": False,
                      "reason": "no step reads the program's input alone and answers what the data holds"})
            return dict(states)
        drawn = distinct_draws(states, lambda: self._draw(states, learnable, ctx), self.candidates)
        return await compare_candidates(states, drawn, ctx,
                                        {"optimizer": "labeled_few_shot", "steps": sorted(learnable)},
                                        compare_on=self.compare_on, empty="no candidate differs from the current states")

    def _draw(self, states: Mapping[str, StepState], learnable: Mapping[str, tuple[tuple[str, ...], str | None]],
              ctx: Context) -> dict[str, StepState]:
        proposed = dict(states)
        rows = list(ctx.train)
        for path, (names, label) in learnable.items():
            k = _count(ctx.rng, self.nb_min_examples, self.nb_max_examples, len(rows))
            order = [int(i) for i in ctx.rng.permutation(len(rows))]
            if self.balanced and label is not None:
                groups: dict[Any, list[int]] = {}
                for i in order:
                    groups.setdefault(rows[i].y.get(label), []).append(i)
                turns = list(groups.values())
                order = [g[j] for j in range(max(map(len, turns))) for g in turns if j < len(g)]
                order = [order[int(i)] for i in ctx.rng.permutation(k)]
            proposed[path] = states[path].with_examples(tuple(
                Demo(dict(rows[i].x), {f: rows[i].y[f] for f in names}, 1.0, rows[i].origin) for i in order[:k]))
        return proposed


def labeled_fields(program: Program, train: Sequence[Example], path: str) -> tuple[tuple[str, ...], str | None] | None:
    """A step that can learn from the data's expected outputs: its answer's fields and its
    first enum field (None without one); None for a step that cannot (it reads more than the
    program's input, or the data does not hold its whole answer)."""
    spec = program.spec
    step = next((s for s in spec.lm_steps() if s.path == path), None)
    if step is None or step.sources != (spec.input_name,) or not train:
        return None
    model = program.models[step.answer_model]
    names = tuple(f.alias or name for name, f in model.model_fields.items())
    if not all(n in train[0].y for n in names):
        return None
    enums = [name for name, f in model.model_fields.items()
             if typing.get_origin(f.annotation) is typing.Literal]
    return names, (enums[0] if enums else None)


def _key(states: Mapping[str, StepState]) -> tuple:
    """What tells two candidates apart: the origins of every step's examples, and what it retrieves."""
    return tuple((path, tuple(d.origin for d in state.examples),
                  None if state.retrieval is None else state.retrieval.key())
                 for path, state in sorted(states.items()))


def _origins(states: Mapping[str, StepState]) -> list[str]:
    """The dataset rows a candidate's unfrozen steps learned from."""
    return sorted({d.origin for state in states.values() if not state.frozen for d in state.examples})
