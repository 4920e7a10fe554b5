"""What the instruction optimizers (`omega`, `reflective`) share: a step and its
predictions described to the proposing LM, the request for new instructions, and a
pool of candidate instruction sets scored example by example on one fixed sample."""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from pydantic import BaseModel

from ..datasets.base import Example
from ..runtime.generate import StepFailure
from ..language.specs import FieldSpec, ProgramSpec
from ..runtime.state import StepState
from .context import Context
from .estimate import Estimate, beats, paired
from .scored import Scored
from .resources import BoundLM

log = logging.getLogger(__name__)

CLIP = 600  # characters of one text value shown to the proposing LM


def _field(f: FieldSpec) -> dict[str, Any]:
    return {"name": f.name, "type": f.type, **({"description": f.description} if f.description else {})}


def describe_step(spec: ProgramSpec, path: str) -> dict[str, Any]:
    """The step at `path` as the proposing LM sees it: the program, the step's kind,
    and the fields (types and descriptions) of what it reads and what it answers."""
    step = next(s for s in spec.lm_steps() if s.path == path)
    producers = {spec.input_name: spec.input_model, **{item.name: item.model for item in spec.steps}}
    return {
        "program": spec.description or spec.name,
        "step": step.name,
        "kind": step.kind,
        **({"tools": list(step.tools)} if step.tools else {}),
        "input_fields": [_field(f) for source in step.sources for f in spec.model(producers[source]).fields],
        "output_fields": [_field(f) for f in spec.model(step.answer_model).fields],
    }


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= CLIP else value[: CLIP - 1] + "…"
    if isinstance(value, Mapping):
        return {k: _clip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clip(v) for v in value]
    return value


def predictions(scored: Sequence[Scored], path: str) -> list[dict[str, Any]]:
    """What the step at `path` did in each run that reached it: its input, its output
    (or error), the program's output when it differs, the expected output, the reward
    and the reward's feedback; long texts cut."""
    rows = []
    for s in scored:
        record = s.trace.steps.get(path)
        if record is None:
            continue
        row: dict[str, Any] = {"input": record.inputs,
                               "output": record.output if record.output is not None else {"error": record.error}}
        if s.trace.output is not None and s.trace.output != record.output:
            row["program_output"] = s.trace.output
        row["expected_output"] = s.example.y
        row["reward"] = s.reward
        if s.feedback:
            row["feedback"] = s.feedback
        rows.append(_clip(row))
    return rows


def worst(scored: Sequence[Scored], path: str, limit: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Up to `limit` of the runs that reached `path` and earned less than 1, lowest reward
    first (ties in a seeded order), described by `predictions`."""
    failed = [s for s in scored if s.reward < 1.0 and path in s.trace.steps]
    order = rng.permutation(len(failed))
    ranked = sorted(range(len(failed)), key=lambda i: (failed[i].reward, order[i]))
    return predictions([failed[i] for i in ranked[:limit]], path)


async def ask_instructions(lm: BoundLM, model: type[BaseModel], prompt: str, inputs: Mapping[str, Any], *,
                           temperature: float, rng: np.random.Generator) -> str | None:
    """The `instructions` field of the LM's answer, asked at `temperature` with a seed drawn
    from `rng` (so repeated requests differ, and a re-run repeats them); None when the LM
    gives no valid answer or an empty text."""
    asked = copy.copy(lm)  # shares the client and the usage records
    asked.spec = dataclasses.replace(lm.spec, options={**lm.spec.options, "temperature": temperature,
                                                       "seed": int(rng.integers(2**31))})
    try:
        answer = await asked.ask(model, prompt, inputs)
    except StepFailure as failure:
        log.info("%s: no new instructions: %s", lm.purpose, failure)
        return None
    return answer["instructions"].strip() or None


@dataclass(eq=False)
class Candidate:
    """One set of instructions (one text per trainable step, in the pool's `paths` order)
    and its reward on each example of the pool's sample, scored under the few-shot
    examples of `version`."""

    id: int
    instructions: tuple[str, ...]
    origin: str
    scores: tuple[float, ...] = ()
    version: int = -1

    @property
    def estimate(self) -> Estimate:
        return Estimate.of(self.scores)

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "origin": self.origin, "reward": self.estimate.to_json()}


def fixed_sample(ctx: Context, size: int) -> list[Example]:
    """The examples candidates are compared on: the validation set (the training set when
    there is none), or a seeded sample of `size` of it when larger."""
    source = ctx.validation or ctx.train
    if len(source) <= size:
        return list(source)
    return [source[int(i)] for i in sorted(ctx.rng.choice(len(source), size, replace=False))]


class Pool:
    """The candidates one fit has seen, scored on a fixed sample.

    A candidate is scored with the few-shot examples of the states it is applied to
    (those the optimizer received last), so candidates compared are scored on the same
    examples with the same few-shot examples: when an optimizer chained before this one
    changes the examples, `begin` scores again the candidates it is asked to keep.
    """

    def __init__(self, ctx: Context, states: Mapping[str, StepState], sample_size: int, name: str) -> None:
        self.ctx, self.name = ctx, name
        self.paths = tuple(path for path, state in states.items() if not state.frozen)
        self.sample = fixed_sample(ctx, sample_size)
        self.base = dict(states)
        self.version = 0
        self.known: dict[tuple[str, ...], Candidate] = {}
        self.failures = 0  # proposals the LM could not make

    def instructions(self, states: Mapping[str, StepState]) -> tuple[str, ...]:
        return tuple(states[path].instructions for path in self.paths)

    def add(self, instructions: tuple[str, ...], origin: str) -> Candidate | None:
        """A new candidate; None when these instructions were seen before."""
        if instructions in self.known:
            return None
        self.known[instructions] = Candidate(len(self.known), instructions, origin)
        return self.known[instructions]

    def states(self, candidate: Candidate) -> dict[str, StepState]:
        states = dict(self.base)
        for path, text in zip(self.paths, candidate.instructions):
            states[path] = dataclasses.replace(states[path], instructions=text)
        return states

    async def score(self, candidate: Candidate) -> None:
        evaluation = await self.ctx.evaluate(self.states(candidate), self.sample, f"{self.name} #{candidate.id}")
        candidate.scores = tuple(s.reward for s in evaluation.scored)
        candidate.version = self.version

    async def begin(self, states: Mapping[str, StepState], keep: Sequence[Candidate]) -> tuple[Candidate, list[int]]:
        """Take the states the trainer passed (their few-shot examples are kept); score the
        incumbent (their instructions) and `keep` where not scored under these examples.
        Returns the incumbent and the ids of the candidates scored."""
        if any(states[p].examples != self.base[p].examples for p in states):
            self.version += 1
        self.base = dict(states)
        current = self.instructions(states)
        incumbent = self.add(current, "incoming") or self.known[current]
        scored = []
        for candidate in dict.fromkeys([incumbent, *keep]):
            if candidate.version != self.version:
                await self.score(candidate)
                scored.append(candidate.id)
        return incumbent, scored


def choose(incumbent: Candidate, candidates: Sequence[Candidate]) -> tuple[Candidate, dict[str, Any]]:
    """The candidate with the best mean reward (the oldest among equals) when it beats the
    incumbent by more than one standard error of their paired difference, else the
    incumbent; and the comparison, for the fit's record."""
    best = max([incumbent, *candidates], key=lambda c: (c.estimate.mean, -c.id))
    kept = best if beats(best.scores, incumbent.scores) else incumbent
    return kept, {"incumbent": incumbent.id, "best": best.id, "kept": kept.id,
                  "difference": paired(best.scores, incumbent.scores).to_json()}
