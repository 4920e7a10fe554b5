"""Checked IR -> program specs, data and training settings, ready to run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import ir
from .catalogue.training import OPTIMIZERS, REWARDS, TRAIN_SETTINGS, problems
from .checker import check
from .catalogue.loaders import LOADERS
from .diagnostics import CheckError, Diagnostic
from .options import bind, kind_of, to_python
from .imports import load_module
from .specs import (ArmSpec, BranchSpec, Compiled, DataSpec, EmbeddingSpec, FieldSpec, LMSpec, ModelSpec,
                    ProgramSpec, StepSpec, ToolSpec, TrainSpec)
from .source import Source
from .vocabulary import PRIMITIVE_TYPES, SECRET_OPTIONS
from ..user_code import UserCodeError, locate

# A back end's look at what the file names outside itself, run after the checker's passes:
# given the module and the file's folder, its diagnostics (`datafiles.check_data_files`
# opens the data files, as `icldsl check` does unless `--no-data`).
Check = Callable[[ir.Module, Path], list[Diagnostic]]


def compile_source(source: Source, *, checks: Sequence[Check] = ()) -> Compiled:
    """Parse (with imports), check (and run `checks`, such as the data files' look) and
    compile; raises CheckError with every diagnostic, and the sources they point into, on failure."""
    module, sources = load_module(source)
    base_dir = Path(source.name).resolve().parent
    try:
        warnings = check_module(module, base_dir, checks=checks)
    except CheckError as exc:
        raise CheckError(exc.diagnostics, sources) from None
    models = {m.name: m for m in module.of(ir.Model)}
    lms = {lm.name: lm for lm in module.of(ir.LM)}
    tools = {t.name: t for t in module.of(ir.Tool)}
    return Compiled(
        source=source,
        programs={p.name: _program(p, models, lms, tools) for p in module.of(ir.Program)},
        data={d.name: _data(d, base_dir) for d in module.of(ir.Data)},
        trains=tuple(_train(t) for t in module.of(ir.Train)),
        lms={name: _lm(lm) for name, lm in lms.items()},
        embeddings={e.name: EmbeddingSpec(e.name, e.target.value, _options(e.options)) for e in module.of(ir.Embedding)},
        warnings=tuple(warnings),
        sources=sources,
    )


def check_module(module: ir.Module, base_dir: Path, *, checks: Sequence[Check] = ()) -> list[Diagnostic]:
    """The checker's passes, then finding the tools and rewards the module uses (relative to
    `base_dir`) by reading their source, never importing it, then `checks`; raises CheckError
    with every diagnostic when there is an error, else returns the warnings."""
    warnings = check(module)
    found = _locate_tools(module, base_dir) + _check_rewards(module, base_dir)
    for more in checks:
        found += more(module, base_dir)
    if any(d.severity == "error" for d in found):
        raise CheckError([*warnings, *found])
    return [*warnings, *found]


def _locate_tools(module: ir.Module, base_dir: Path) -> list[Diagnostic]:
    """Find and parse (never import: checking runs no user code) every tool a program uses,
    so a missing one is reported before any LM call."""
    used = {t.name for p in module.of(ir.Program) for s in p.lm_steps() for t in s.tools}
    errors = []
    for tool in module.of(ir.Tool):
        if tool.name in used:
            try:
                locate(tool.impl.args[0].value.value, (base_dir,))
            except UserCodeError as exc:
                errors.append(Diagnostic("unknown-function", f"tool `{tool.name}`: {exc}", tool.impl.span,
                                         "cannot load", "the module must be importable, or sit beside the .icl file"))
    return errors


def _check_rewards(module: ir.Module, base_dir: Path) -> list[Diagnostic]:
    """Reward options out of range, and `python` rewards that cannot be found, before any LM call."""
    errors = []
    for setting in (s for t in module.of(ir.Train) for s in t.settings if s.key == "reward"):
        bound = bind(REWARDS[setting.value.func].signature, setting.value.args)
        options = {k: to_python(v) for k, v in bound.items()}
        for problem in problems(setting.value.func, options, (base_dir,)):
            errors.append(Diagnostic(problem.code, problem.message, bound[problem.option].span, problem.label,
                                     problem.help))
    return errors


def compile_file(path: str | Path) -> Compiled:
    return compile_source(Source.from_path(path))


class _JSONType(ir.TypeVisitor[Any]):
    """The JSON form of a type (see specs.py); constraints ride along as `{"constrained": ...}`."""

    def named(self, t: ir.NamedType) -> Any:
        return _constrained(t, t.name if t.name in PRIMITIVE_TYPES else {"model": t.name})

    def list_(self, t: ir.ListType, item: Any) -> Any:
        return _constrained(t, {"list": item})

    def optional(self, t: ir.OptionalType, inner: Any) -> Any:
        return {"optional": inner}

    def enum(self, t: ir.EnumType) -> Any:
        return {"enum": list(t.choices)}


def _constrained(t: ir.NamedType | ir.ListType, base: Any) -> Any:
    return {"constrained": base, **{a.name: to_python(a.value) for a in t.constraints}} if t.constraints else base


_type = _JSONType().visit


def _model_specs(names: list[str], models: Mapping[str, ir.Model]) -> list[ModelSpec]:
    """The named models and those they contain, each after the ones it uses
    (a model reached again through its own list field is already on the way)."""
    ordered: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in ordered or name in visiting:
            return
        visiting.add(name)
        for f in models[name].fields:
            for inner in ir.model_names(f.type):
                visit(inner)
        ordered.append(name)

    for name in names:
        visit(name)
    return [ModelSpec(n, tuple(FieldSpec(f.name, _type(f.type), f.description) for f in models[n].fields))
            for n in ordered]


def _options(args: tuple[ir.Arg, ...]) -> dict[str, Any]:
    """Options as stored: `env(...)` unresolved, a literal key dropped (it never leaves the file)."""
    return {a.name: to_python(a.value, resolve_env=False) for a in args
            if not (a.name in SECRET_OPTIONS and not isinstance(a.value, ir.EnvValue))}


def _lm(lm: ir.LM) -> LMSpec:
    return LMSpec(lm.name, lm.target.value, _options(lm.options))


def _with_fallbacks(names: set[str], lms: Mapping[str, ir.LM]) -> list[str]:
    """`names` and the lms they fall back to, sorted (the checker ruled out cycles)."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found or name not in lms:
            continue
        found.add(name)
        todo += [a.value.name for a in lms[name].options if a.name == "fallback" and isinstance(a.value, ir.Ref)]
    return sorted(found)


THINKING = FieldSpec("thinking", "str", "Your step by step thinking, written before the answer")
# The instructions a step starts from when the file gives it none.
DEFAULT_INSTRUCTIONS = "Read the input and write the output fields as the schema describes them."
DEFAULT_INSTRUCTIONS_BY_KIND = {
    "decide": "Read the input and choose the label that fits it best.",
    "agent": "Use the tools when they help: call one per turn, read its result, and finish with the answer.",
}


def _step(step: ir.Step, program: str, default_lm: str | None) -> StepSpec:
    answer = f"{step.model.name}+thinking" if step.kind == "chain_of_thought" else step.model.name
    return StepSpec(
        name=step.name, kind=step.kind, model=step.model.name, answer_model=answer,
        sources=tuple(r.name for r in step.sources), lm=step.lm.name if step.lm else default_lm,
        path=f"{program}/{step.name}", frozen=step.frozen, tools=tuple(r.name for r in step.tools),
        max_steps=step.max_steps.value if step.max_steps else (6 if step.kind == "agent" else 0),
    )


def _topological(items: list) -> list:
    """Steps ordered so each follows the steps it reads (the checker ruled out cycles)."""
    names = {item.name for item in items}
    done: list = []
    placed: set[str] = set()
    pending = list(items)
    while pending:
        ready = [i for i in pending if all(s in placed or s not in names for s in i.sources)]
        done += ready
        placed.update(i.name for i in ready)
        pending = [i for i in pending if i.name not in placed]
    return done


def _program(
    program: ir.Program, models: Mapping[str, ir.Model], lms: Mapping[str, ir.LM], tools: Mapping[str, ir.Tool]
) -> tuple[ProgramSpec, dict[str, str]]:
    (inp,), (out,) = program.inputs, program.outputs
    default_lm = next(iter(lms)) if len(lms) == 1 else None
    items: list[StepSpec | BranchSpec] = []
    for item in program.steps:
        if isinstance(item, ir.Branch):
            arms = tuple(ArmSpec(a.label, _step(a.step, program.name, default_lm)) for a in item.arms)
            items.append(BranchSpec(item.name, (item.on.path[0], item.on.path[1]), arms, arms[0].step.model))
        else:
            items.append(_step(item, program.name, default_lm))
    steps = _topological(items)
    lm_steps = [s for item in steps for s in ((a.step for a in item.arms) if isinstance(item, BranchSpec) else (item,))]
    produced = {inp.name: inp.model.name, **{item.name: item.model for item in steps}}
    outputs = tuple(r.name for r in out.refs)
    specs = _model_specs([inp.model.name, *(s.model for s in lm_steps)], models)
    for step in lm_steps:
        if step.answer_model != step.model and all(m.name != step.answer_model for m in specs):
            specs.append(ModelSpec(step.answer_model, (THINKING, *next(m for m in specs if m.name == step.model).fields)))
    output_model = produced[outputs[0]]
    if len(outputs) > 1:
        output_model = f"{program.name}.output"
        fields = tuple(f for o in outputs for f in next(m for m in specs if m.name == produced[o]).fields)
        specs.append(ModelSpec(output_model, fields))
    used_tools = sorted({t for s in lm_steps for t in s.tools})
    spec = ProgramSpec(
        name=program.name,
        description=program.description,
        input_name=inp.name,
        input_model=inp.model.name,
        outputs=outputs,
        output_model=output_model,
        models=tuple(specs),
        lms=tuple(_lm(lms[name]) for name in _with_fallbacks({s.lm for s in lm_steps}, lms)),
        tools=tuple(ToolSpec(name, tools[name].impl.args[0].value.value) for name in used_tools),
        steps=tuple(steps),
    )
    given = {s.name: s.instructions.value for s in program.lm_steps() if s.instructions}
    return spec, {step.path: given.get(step.name, DEFAULT_INSTRUCTIONS_BY_KIND.get(step.kind, DEFAULT_INSTRUCTIONS))
                  for step in lm_steps}


def _data(data: ir.Data, base_dir: Path) -> DataSpec:
    bound = bind(LOADERS[data.loader.func].signature, data.loader.args)
    return DataSpec(data.name, data.loader.func, {k: to_python(v) for k, v in bound.items()}, base_dir)


def _call(call: ir.Call, registry: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    bound = bind(registry[call.func].signature, call.args)
    return call.func, {name: to_python(value) for name, value in bound.items()}


def _train(train: ir.Train) -> TrainSpec:
    values: dict[str, Any] = {"optimizers": ()}
    for setting in train.settings:
        if setting.key == "optimizer":
            values["optimizers"] += (_call(setting.value, OPTIMIZERS),)
        elif setting.key == "reward":
            values[setting.key] = _call(setting.value, REWARDS)
        elif setting.key == "checkpoint":
            values["monitor"], values["mode"] = setting.value.monitor.name, setting.value.mode.name
        else:
            value = to_python(setting.value)
            values[setting.key] = float(value) if kind_of(TRAIN_SETTINGS.options[setting.key]) is float else value
    return TrainSpec(program=train.program.name, data=train.data.name, **values)

