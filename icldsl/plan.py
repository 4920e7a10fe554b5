"""`icldsl plan`: the program runs, LM calls and tokens a fit will take, before it spends any.

The phases are those of `training.session.fit_compiled`: the untrained program on
the test split `runs` times; training, as the trainer schedules it (`trainer.Schedule`:
the validation split before training; per epoch every training example once, then the
validation split; what optimizers add, their `planned_calls`); the trained program on
the test split `runs` times. Training is what a `budget` limits.

Calls: one per LM step a run reaches, assuming each answer validates the first time
(a refused answer is asked for once more). A `branch` counts its arm with the most
calls and an `agent` up to `max_steps + 1` (its turns and the final answer), so such
plans are upper bounds.

Tokens are estimates. The real prompts (`runtime.prompt`) are rendered for a sample
of each split; values that earlier steps would produce are taken from the expected
output when it holds them, else shown as `<step.field>`. Once training has proposed
states (after the first batch), every step that is not frozen is counted with the
optimizers' `nb_max_examples` few-shot examples, built from the training data.
Prompts to a `local` LM are counted with its own chat template and tokenizer (only
the model's vocabulary is loaded); other LMs' as ceil(characters / 4) of the
messages' text. Completion tokens: a typical figure (the expected answer as JSON)
and the bound the LMs' `max_tokens` set. No LM client is created.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .language.specs import Compiled, TrainSpec
from .datasets import Example
from .lm import split_target
from .lm.base import LMConfigError, LMRequest, LMResponse, Message
from .language.options import LM_NAME
from .runtime import prompt
from .runtime.bounds import FieldBound, bounds_text, describe, starved
from .runtime.program import Program
from .runtime.request import finishing, step_request
from .runtime.state import Demo, StepState
from .language.specs import ArmSpec, BranchSpec, StepSpec
from .runtime.tools import describe_tools
from .training.context import Optimizer
from .language.catalogue.training import REWARDS
from .training.resources import Resources
from .training.session import load_data, make_optimizer, program_of, split, with_data_bounds
from .training.trainer import Schedule, Stage

SAMPLE = 32  # examples of each split whose prompts are rendered and counted


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One LM step: the calls it makes each time a run reaches it, and the few-shot
    examples it will hold once trained."""

    path: str
    kind: str
    lm: str
    target: str
    calls: int
    max_tokens: int | None
    frozen: bool
    examples: int
    bounds: tuple[FieldBound, ...] = ()  # the length bound of each string field of the answer (not an agent's)


@dataclass(frozen=True, slots=True)
class Phase:
    """Program runs, LM calls and estimated tokens of one part of the fit.
    `completion_max` is None when an LM on the way sets no `max_tokens`; `estimated`
    is False for calls whose tokens are not estimated (left out of the token counts)."""

    name: str
    runs: int
    calls: int
    prompt_tokens: int
    completion_tokens: int
    completion_max: int | None
    training: bool  # spent while training: what a budget limits
    estimated: bool = True

    def __add__(self, other: "Phase") -> "Phase":
        bound = None if self.completion_max is None or other.completion_max is None \
            else self.completion_max + other.completion_max
        return Phase(self.name, self.runs + other.runs, self.calls + other.calls,
                     self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     bound, self.training and other.training, self.estimated and other.estimated)

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class Plan:
    program: str
    file: str
    data: str
    sizes: Mapping[str, int]  # train, validation, test
    epochs: int
    batches: int  # per epoch
    runs: int  # test evaluations before and after training
    calls_per_run: int
    upper_bound: bool  # calls are a bound (a branch or an agent), not an exact count
    steps: tuple[StepPlan, ...]
    phases: tuple[Phase, ...]
    budget: Mapping[str, int] | None
    counting: Mapping[str, str]  # LM target -> how its tokens were counted
    notes: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # settings that make the fit fail or learn less, with the fix

    @property
    def total(self) -> Phase:
        return sum(self.phases, Phase("total", 0, 0, 0, 0, 0, True))

    @property
    def training(self) -> Phase:
        return sum((p for p in self.phases if p.training), Phase("training", 0, 0, 0, 0, 0, True))

    @property
    def exceeds(self) -> dict[str, bool]:
        """Per budget limit, whether training is planned to go past it (tokens: typical completions)."""
        spent = {"calls": self.training.calls, "tokens": self.training.tokens}
        return {key: spent[key] > limit for key, limit in (self.budget or {}).items()}

    def to_json(self) -> dict[str, Any]:
        doc = dataclasses.asdict(self)
        doc["total"], doc["training"] = dataclasses.asdict(self.total), dataclasses.asdict(self.training)
        doc["exceeds"] = self.exceeds
        return doc


# ---- counting tokens ---------------------------------------------------------------


class _Characters:
    """ceil(characters / 4): the usual rule of thumb for English text and JSON."""

    def __init__(self, why: str = "") -> None:
        self.method = "ceil(characters / 4) of the messages' text" + why

    def messages(self, messages: Sequence[Message]) -> int:
        return math.ceil(sum(len(m.content) for m in messages) / 4)

    def text(self, text: str) -> int:
        return math.ceil(len(text) / 4)

    def close(self) -> None:
        pass


class _LocalVocabulary:
    """A local model's own count (`lm.local.Vocabulary`), saying how it counted."""

    def __init__(self, target: str) -> None:
        from .lm.local import Vocabulary  # llama.cpp loads only for a local LM

        vocabulary = Vocabulary(split_target(target)[1])
        self.messages, self.text, self.close = vocabulary.messages, vocabulary.text, vocabulary.close
        self.method = f"the chat template and tokenizer of {target} (llama.cpp)"


def _counter(target: str) -> _Characters | _LocalVocabulary:
    if split_target(target)[0] == "local":
        try:
            return _LocalVocabulary(target)
        except LMConfigError as exc:
            return _Characters(f" (the local tokenizer is not available: {exc})")
    return _Characters()


# ---- what one run sends ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tokens:
    """Tokens of one program run, or one step's share: prompts untrained and trained, a typical completion."""

    untrained: float = 0.0
    trained: float = 0.0
    completion: float = 0.0

    def __add__(self, other: "_Tokens") -> "_Tokens":
        return _Tokens(self.untrained + other.untrained, self.trained + other.trained,
                       self.completion + other.completion)

    def scaled(self, factor: float) -> "_Tokens":
        return _Tokens(self.untrained * factor, self.trained * factor, self.completion * factor)


def _fields(program: Program, model: str) -> list[str]:
    return [info.alias or name for name, info in program.models[model].model_fields.items()]


def _step_calls(step: StepSpec) -> int:
    return step.max_steps + 1 if step.kind == "agent" else 1


def _item_calls(item: StepSpec | BranchSpec) -> int:
    return max(_step_calls(a.step) for a in item.arms) if isinstance(item, BranchSpec) else _step_calls(item)


class _Renderer:
    """Renders and counts every LM step's messages for one example."""

    def __init__(self, program: Program, counters: Mapping[str, _Characters | _LocalVocabulary],
                 examples: Mapping[str, int], pool: Sequence[Example]) -> None:
        self.program, self.counters, self.examples = program, counters, examples
        spec = program.spec
        self.lms = {lm.name: lm for lm in spec.lms}
        self.targets = {lm.name: lm.target for lm in spec.lms}
        self.owner = {a.step.path: item.name for item in spec.steps if isinstance(item, BranchSpec) for a in item.arms}
        self.tools = describe_tools(spec.tools, program.search_path)  # plan runs no user code
        walks = [self.walk(x)[1] for x in pool]
        self.demos = {step.path: [Demo(w[step.path][0], w[step.path][1], 1.0, x.origin) for w, x in zip(walks, pool)]
                      for step in spec.lm_steps()}

    def walk(self, example: Example) -> tuple[dict[str, dict], dict[str, tuple[dict, dict]]]:
        """The value of every step for `example`, and each LM step's (inputs, expected answer)."""
        spec = self.program.spec
        values = {spec.input_name: dict(example.x)}
        for item in spec.steps:
            values[item.name] = {f: example.y.get(f, f"<{item.name}.{f}>") for f in _fields(self.program, item.model)}
        calls = {}
        for step in spec.lm_steps():
            inputs = {k: v for source in step.sources for k, v in values[source].items()}
            made = values[self.owner.get(step.path, step.name)]
            answer = {f: made.get(f, example.y.get(f, f"<{step.name}.{f}>"))
                      for f in _fields(self.program, step.answer_model)}
            calls[step.path] = (inputs, answer)
        return values, calls

    def run(self, example: Example, index: int) -> _Tokens:
        """Tokens of one run of `example` (the `index`-th of its sample: it picks the few-shot examples)."""
        values, calls = self.walk(example)
        total = _Tokens()
        for item in self.program.spec.steps:
            if isinstance(item, StepSpec):
                total += self._step(item, *calls[item.path], index)
            else:
                arms = [self._step(a.step, *calls[a.step.path], index) for a in _arms(item, values)]
                total += max(arms, key=lambda t: t.trained + t.completion, default=_Tokens())
        return total

    def _step(self, step: StepSpec, inputs: dict, answer: dict, index: int) -> _Tokens:
        count = self.counters[self.targets[step.lm]]
        state = self.program.states[step.path]
        pool = self.demos[step.path]
        demos = tuple(pool[(index + 1 + j) % len(pool)] for j in range(self.examples[step.path])) if pool else ()
        if step.kind == "agent":
            answer = finishing(answer)

        def prompt_tokens(state: StepState) -> int:
            return count.messages(step_request(step, state, inputs, self.program.models[step.answer_model],
                                               self.lms[step.lm], self.tools).request.messages)

        untrained = prompt_tokens(state)
        tokens = _Tokens(untrained, prompt_tokens(state.with_examples(demos)) if demos else untrained,
                         count.text(prompt.to_json(answer)))
        return tokens.scaled(_step_calls(step))


def _arms(item: BranchSpec, values: Mapping[str, Mapping[str, Any]]) -> list[ArmSpec]:
    """The arm a run takes (`BranchSpec.arm`); every arm when the routed value is unknown."""
    value = values[item.on[0]].get(item.on[1])
    if value == f"<{item.on[0]}.{item.on[1]}>":
        return list(item.arms)
    arm = item.arm(value)
    return [arm] if arm else []


def _sample(examples: Sequence[Example]) -> Sequence[Example]:
    """At most SAMPLE examples, evenly spread."""
    return examples[:: math.ceil(len(examples) / SAMPLE)] if examples else examples


def _mean_run(renderer: _Renderer, examples: Sequence[Example]) -> _Tokens:
    sample = _sample(examples)
    if not sample:
        return _Tokens()
    return sum((renderer.run(x, i) for i, x in enumerate(sample)), _Tokens()).scaled(1 / len(sample))


# ---- the plan ----------------------------------------------------------------------


class _Unused:
    """Stands for every LM and embedding model while optimizers are built: a plan spends nothing."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def complete(self, request: LMRequest) -> LMResponse:
        raise RuntimeError(f"icldsl plan calls no LM ({self.name})")

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise RuntimeError(f"icldsl plan calls no embedding model ({self.name})")

    async def aclose(self) -> None:
        pass


class _NoConnections(Resources):
    def embedder(self, name: str) -> _Unused:
        return _Unused(self.embeddings[name].target)


def _optimizer(compiled: Compiled, train: TrainSpec) -> Optimizer:
    """The train block's optimizer, built as a fit builds it, on LMs that are never called."""
    resources = _NoConnections(compiled.lms, compiled.embeddings,
                               clients={name: _Unused(lm.target) for name, lm in compiled.lms.items()},
                               search_path=(compiled.base_dir,))
    return make_optimizer(train, resources)


def plan_compiled(compiled: Compiled, train: TrainSpec) -> Plan:
    """What fitting `train` will take; loads the data, calls no LM."""
    program = program_of(compiled, train.program)
    data = load_data(compiled, train, program)
    program, cut = with_data_bounds(program, data.train)  # as the fit bounds the strings
    train_set, val_set = split(data.train, train.validation_split, np.random.default_rng(train.seed))
    optimizer = _optimizer(compiled, train)
    schedule = Schedule.of(optimizer, program, train_set, val_set, epochs=train.epochs, batch_size=train.batch_size,
                           monitor=train.monitor)
    shots = optimizer.max_examples()
    spec = program.spec
    lms = {lm.name: lm for lm in spec.lms}
    steps = tuple(
        StepPlan(s.path, s.kind, s.lm, lms[s.lm].target, _step_calls(s), lms[s.lm].options.get("max_tokens"),
                 program.states[s.path].frozen, 0 if program.states[s.path].frozen else min(shots, len(train_set)),
                 () if s.kind == "agent" else describe(program.models[s.answer_model], program.states[s.path].bounds,
                                                       lms[s.lm]))
        for s in spec.lm_steps())
    counters = {lm.target: _counter(lm.target) for lm in spec.lms}
    try:
        renderer = _Renderer(program, counters, {s.path: s.examples for s in steps}, _sample(train_set))
        cost = {"test": _mean_run(renderer, data.test), "train": _mean_run(renderer, train_set),
                "validation": _mean_run(renderer, val_set)}
    finally:
        for counter in counters.values():
            counter.close()

    per_run = sum(_item_calls(item) for item in spec.steps)
    bounds = {s.path: None if s.max_tokens is None else s.calls * s.max_tokens for s in steps}
    max_per_run: int | None = 0
    for item in spec.steps:
        paths = [a.step.path for a in item.arms] if isinstance(item, BranchSpec) else [item.path]
        item_max = None if any(bounds[p] is None for p in paths) else max(bounds[p] for p in paths)
        max_per_run = None if max_per_run is None or item_max is None else max_per_run + item_max

    def phase(name: str, runs: int, part: str, trained_runs: int, training: bool) -> Phase:
        tokens = cost[part]
        return Phase(name, runs, runs * per_run,
                     round(trained_runs * tokens.trained + (runs - trained_runs) * tokens.untrained),
                     round(runs * tokens.completion), None if max_per_run is None else runs * max_per_run, training)

    n_train, n_val, n_test = len(train_set), len(val_set), len(data.test)
    tests = f": {train.runs} runs of {n_test}" if train.runs > 1 else ""
    phases = [phase(f"test, untrained{tests}", train.runs * n_test, "test", 0, False)]
    notes = []
    per_call = cost["validation" if n_val else "train"].scaled(1 / per_run) if per_run else _Tokens()
    per_call_max = None if max_per_run is None else math.ceil(max_per_run / per_run) if per_run else 0
    for stage in schedule.stages(per_run):
        if stage.kind != "optimizer":
            part = "train" if stage.kind == "training" else "validation"
            phases.append(phase(_stage_name(stage), stage.runs, part, stage.trained, True))
            continue
        name, calls = train.optimizers[stage.member][0], stage.calls
        phases.append(Phase(f"optimizer {name}", 0, calls, round(calls * per_call.trained),
                            round(calls * per_call.completion), None if per_call_max is None else calls * per_call_max,
                            True))
        if calls:
            notes.append(f"optimizer `{name}`: its calls' tokens are counted like calls of the trained program; "
                         "prompts to an optimizer's own LM may be longer")
    phases.append(phase(f"test, trained{tests}", train.runs * n_test, "test", train.runs * n_test, False))
    judge = _reward_lm(train)
    if judge:
        graded = {True: n_val + train.epochs * (n_train + n_val), False: 2 * train.runs * n_test}
        phases[-1:-1] = [Phase(f"reward {train.reward[0]}: training predictions", 0, graded[True], 0, 0, None,
                               True, estimated=False)]
        phases.append(Phase(f"reward {train.reward[0]}: test predictions", 0, graded[False], 0, 0, None, False,
                            estimated=False))
        notes.append(f"reward `{train.reward[0]}` asks lm `{judge}` about every prediction that has an output "
                     "(counted for every run; the runs of candidates an optimizer scores are graded too, and not "
                     "counted here); its tokens are not estimated")

    if not schedule.trains:
        notes.append("the optimizers learn from the data alone: training does not run the program on the training "
                     "examples (no training metrics are logged)")
    notes += _notes(program, train)
    return Plan(
        program=train.program, file=compiled.source.name, data=data.name,
        sizes={"train": n_train, "validation": n_val, "test": n_test}, epochs=train.epochs, batches=schedule.batches,
        runs=train.runs, calls_per_run=per_run,
        upper_bound=any(isinstance(i, BranchSpec) for i in spec.steps) or any(s.kind == "agent" for s in steps),
        steps=steps, phases=tuple(phases), budget=dict(train.budget) if train.budget else None,
        counting={target: counter.method for target, counter in counters.items()}, notes=tuple(notes),
        warnings=cut + tuple(w for s in steps if (w := starved(s.path, s.bounds))),
    )


def _stage_name(stage: Stage) -> str:
    if stage.epoch == 0:
        return "validation, before training"
    return f"epoch {stage.epoch}: {stage.kind}"


def _notes(program: Program, train: TrainSpec) -> list[str]:
    notes = []
    for item in program.spec.steps:
        if isinstance(item, BranchSpec):
            notes.append(f"branch `{item.name}` runs one arm; its arm with the most calls is counted (an upper bound)")
        elif item.kind == "agent":
            notes.append(f"agent `{item.name}` makes up to {item.max_steps + 1} calls (max_steps {item.max_steps}, "
                         "then the answer; an upper bound), each counted with its first turn's prompt; later turns "
                         "also carry earlier turns and tool results")
    held = set(_fields(program, program.spec.output_model))
    for step in program.spec.lm_steps():
        missing = [f for f in _fields(program, step.answer_model) if f not in held]
        if missing:
            notes.append(f"step {step.path}: the data holds no {', '.join(missing)}; a `<step.field>` placeholder "
                         "stands in for each in its typical completion and few-shot examples (max_tokens bounds them)")
    notes.append("calls assume every answer validates the first time; a refused answer is asked for once more "
                 "(one more call)")
    if train.early_stopping:
        notes.append(f"early stopping (patience {train.early_stopping}) may end training before epoch {train.epochs}")
    return notes


def _reward_lm(train: TrainSpec) -> str | None:
    """The lm the train block's reward asks about predictions (an LM judge), if it names one."""
    name, options = train.reward
    signature = REWARDS[name].signature.options if name in REWARDS else {}
    return next((value for key, value in options.items() if signature.get(key) is LM_NAME), None)


# ---- the table ---------------------------------------------------------------------


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def format_plan(plan: Plan) -> str:
    """The plan as `icldsl plan` prints it."""
    s = plan.sizes
    lines = [
        f"plan for `{plan.program}` ({plan.file}): data `{plan.data}`, {s['train']} train, {s['validation']} "
        f"validation, {s['test']} test examples; {plan.epochs} epoch(s) of {plan.batches} batch(es); "
        f"{plan.runs} test run(s) before and after training",
    ]
    for step in plan.steps:
        calls = f"up to {step.calls} calls" if step.kind == "agent" else "1 call"
        trained = ", frozen" if step.frozen else f", {step.examples} few-shot example(s) once trained"
        lines.append(f"  step {step.path}: {step.kind}, lm {step.lm} ({step.target}), {calls} when reached, "
                     f"max_tokens {_n(step.max_tokens)}{trained}")
        if step.bounds:
            lines.append(f"    string bounds: {bounds_text(step.bounds)}")
    for target, method in plan.counting.items():
        lines.append(f"  tokens of {target}: {method}")
    rows = [(p.name, p, False) for p in plan.phases] + [
        ("total", plan.total, True), ("  training (what a budget limits)", plan.training, True)]
    width = max(len(name) for name, _, _ in rows) + 2
    lines += ["", f"{'phase':<{width}}{'runs':>8}{'LM calls':>11}{'prompt tokens':>16}{'completion ~':>15}"
                  f"{'completion max':>17}"]
    for name, p, total in rows:
        mark = "≤" if p.calls and (plan.upper_bound or not p.estimated) else ""
        known = p.estimated or total
        lines.append(f"{name:<{width}}{_n(p.runs) if p.runs else '-':>8}{mark + _n(p.calls):>11}"
                     f"{'~' + _n(p.prompt_tokens) if known else '?':>16}"
                     f"{'~' + _n(p.completion_tokens) if known else '?':>15}{_n(p.completion_max):>17}")
    lines.append("")
    if plan.budget:
        spent = {"calls": plan.training.calls, "tokens": plan.training.tokens}
        for key, limit in plan.budget.items():
            verdict = ("exceeds it: the fit will stop when it is reached, keeping the best states so far"
                       if plan.exceeds[key] else "within it")
            lines.append(f"budget {key} {limit:,}: training plans {'~' if key == 'tokens' else ''}{spent[key]:,}, "
                         f"{verdict}")
    else:
        lines.append("budget: none (`budget { calls: N, tokens: N }` in the train block stops training when reached)")
    lines += [f"warning: {warning}" for warning in plan.warnings]
    lines += ["notes:", *(f"  - {note}" for note in plan.notes),
              "  - tokens are estimates (~): prompts rendered for a sample of each split; completion ~ is the "
              "expected answer as JSON, completion max what max_tokens allows"]
    return "\n".join(lines)
