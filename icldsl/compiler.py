"""Checked IR -> program specs, data and training settings, ready to run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import ir
from .checker import check
from .datasets import LOADERS
from .diagnostics import Diagnostic
from .options import Signature, bind, to_python
from .parser import parse
from .runtime.prompt import DEFAULT_INSTRUCTIONS
from .runtime.spec import FieldSpec, LMSpec, ModelSpec, ProgramSpec, StepSpec
from .runtime.state import StepState
from .source import Source

SECRET_OPTIONS = ("api_key",)


@dataclass(frozen=True, slots=True)
class DataSpec:
    name: str
    loader: str
    args: Mapping[str, Any]
    base_dir: Path


@dataclass(frozen=True, slots=True)
class TrainSpec:
    """A train block with every default filled in."""

    program: str
    data: str
    reward: tuple[str, Mapping[str, Any]]
    optimizer: tuple[str, Mapping[str, Any]]
    epochs: int = 1
    batch_size: int = 32
    runs: int = 1
    seed: int = 0
    validation_split: float = 0.2
    concurrency: int = 4
    monitor: str = "val_reward"
    mode: str = "max"


@dataclass(frozen=True, slots=True)
class Compiled:
    """Everything one file defines, compiled."""

    source: Source
    programs: Mapping[str, tuple[ProgramSpec, Mapping[str, StepState]]]
    data: Mapping[str, DataSpec]
    trains: tuple[TrainSpec, ...]
    warnings: tuple[Diagnostic, ...] = field(default=())

    def train(self, name: str | None = None) -> TrainSpec:
        """The train block for program `name`, or the only (first) one."""
        for spec in self.trains:
            if name is None or spec.program == name:
                return spec
        raise KeyError(name or "no train block")


def compile_source(source: Source) -> Compiled:
    """Parse, check and compile; raises CheckError with every diagnostic on failure."""
    module = parse(source)
    warnings = check(module)
    base_dir = Path(source.name).resolve().parent
    models = {m.name: m for m in module.of(ir.Model)}
    lms = {lm.name: lm for lm in module.of(ir.LM)}
    return Compiled(
        source=source,
        programs={p.name: _program(p, models, lms) for p in module.of(ir.Program)},
        data={d.name: _data(d, base_dir) for d in module.of(ir.Data)},
        trains=tuple(_train(t) for t in module.of(ir.Train)),
        warnings=tuple(warnings),
    )


def compile_file(path: str | Path) -> Compiled:
    return compile_source(Source.from_path(path))


def _type(t: ir.TypeExpr) -> Any:
    if isinstance(t, ir.NamedType):
        return t.name if t.name in ir.BUILTIN_TYPES else {"model": t.name}
    if isinstance(t, ir.ListType):
        return {"list": _type(t.item)}
    if isinstance(t, ir.OptionalType):
        return {"optional": _type(t.inner)}
    return {"enum": list(t.choices)}


def _models_used(names: list[str], models: Mapping[str, ir.Model]) -> tuple[ModelSpec, ...]:
    """The named models and those they contain, each after the ones it uses."""
    ordered: list[str] = []

    def visit(name: str) -> None:
        if name in ordered:
            return
        for f in models[name].fields:
            for inner in _model_names(f.type):
                visit(inner)
        ordered.append(name)

    for name in names:
        visit(name)
    return tuple(
        ModelSpec(n, tuple(FieldSpec(f.name, _type(f.type), f.description) for f in models[n].fields))
        for n in ordered
    )


def _model_names(t: ir.TypeExpr):
    if isinstance(t, ir.NamedType) and t.name not in ir.BUILTIN_TYPES:
        yield t.name
    elif isinstance(t, ir.ListType):
        yield from _model_names(t.item)
    elif isinstance(t, ir.OptionalType):
        yield from _model_names(t.inner)


def _lm(lm: ir.LM) -> LMSpec:
    options = {}
    for arg in lm.options:
        if arg.name in SECRET_OPTIONS and not isinstance(arg.value, ir.EnvValue):
            continue  # a literal key never leaves the source file
        options[arg.name] = to_python(arg.value, resolve_env=False)
    return LMSpec(lm.name, lm.target.value, options)


def _program(
    program: ir.Program, models: Mapping[str, ir.Model], lms: Mapping[str, ir.LM]
) -> tuple[ProgramSpec, dict[str, StepState]]:
    (inp,), (out,) = program.inputs, program.outputs
    default_lm = next(iter(lms)) if len(lms) == 1 else None
    steps = tuple(
        StepSpec(
            s.name, s.kind, s.model.name, tuple(r.name for r in s.sources),
            s.lm.name if s.lm else default_lm, f"{program.name}/{s.name}",
        )
        for s in program.steps
    )
    used_lms = sorted({s.lm for s in steps})
    spec = ProgramSpec(
        name=program.name,
        description=program.description,
        input_name=inp.name,
        input_model=inp.model.name,
        output=out.ref.name,
        models=_models_used([inp.model.name, *(s.model for s in steps)], models),
        lms=tuple(_lm(lms[name]) for name in used_lms),
        steps=steps,
    )
    states = {
        step.path: StepState(s.instructions.value if s.instructions else DEFAULT_INSTRUCTIONS)
        for s, step in zip(program.steps, steps)
    }
    return spec, states


def _data(data: ir.Data, base_dir: Path) -> DataSpec:
    loader = LOADERS[data.loader.func]
    bound = bind(Signature(loader.options, positional=loader.positional), data.loader.args)
    return DataSpec(data.name, data.loader.func, {k: to_python(v) for k, v in bound.items()}, base_dir)


def _call(call: ir.Call) -> tuple[str, dict[str, Any]]:
    return call.func, {a.name: to_python(a.value) for a in call.args if a.name is not None}


def _train(train: ir.Train) -> TrainSpec:
    values: dict[str, Any] = {}
    for setting in train.settings:
        if setting.key in ("reward", "optimizer"):
            values[setting.key] = _call(setting.value)
        elif setting.key == "checkpoint":
            values["monitor"], values["mode"] = setting.value.monitor.name, setting.value.mode.name
        else:
            values[setting.key] = to_python(setting.value)
    if "validation_split" in values:
        values["validation_split"] = float(values["validation_split"])
    return TrainSpec(program=train.program.name, data=train.data.name, **values)

