"""Rules for `data` and `train` blocks: loaders and their options, rewards, optimizers,
settings, and data whose shape fits the program."""

from __future__ import annotations

from typing import Mapping

from .. import ir
from ..catalogue.lms import PROVIDERS, split_target
from ..catalogue.loaders import LOADERS, problems
from ..diagnostics import Sink, did_you_mean
from ..catalogue.training import BUDGET_KEYS, OPTIMIZERS, REWARDS, TRAIN_SETTINGS, budget_problems
from ..options import AtLeast, Between, Signature, Within, bind, expected_found, kind_of, matches, to_python, type_name
from .common import check_args, check_references, first, output_model


REPEATABLE = ("optimizer",)  # several optimizer lines chain
# What a checkpoint or early stopping may monitor, besides `f1_<field>` for each enum field
# of the output; each also with `val_` in front.
METRICS = ("reward", "accuracy", "failures", "calls", "tokens")
MODES = ("max", "min")


def check_data(module: ir.Module, sink: Sink) -> None:
    for data in module.of(ir.Data):
        call = data.loader
        loader = LOADERS.get(call.func)
        if loader is None:
            sink.add("unknown-function", f"unknown data loader `{call.func}`", call.span, "not a loader",
                     did_you_mean(call.func, LOADERS) or f"loaders: {', '.join(LOADERS)}")
            continue
        signature = loader.signature
        before = len(sink.errors)
        check_args(call.args, Signature({name: kind_of(t) for name, t in signature.options.items()},
                                        signature.required, signature.positional),
                   f"loader `{call.func}`", sink, call_span=call.span)
        if len(sink.errors) == before:  # values of the right types: do they work together?
            bound = bind(signature, call.args)
            values = {name: to_python(v) for name, v in bound.items() if isinstance(v, ir.Literal)}
            for option, message in problems(values, signature):
                sink.add("invalid-value", f"loader `{call.func}`: {message}", bound[option].span, "cannot work")


def check_trains(module: ir.Module, sink: Sink) -> None:
    programs = first(module.of(ir.Program))
    datas = first(module.of(ir.Data))
    models = first(module.of(ir.Model))
    names = {"lm": first(module.of(ir.LM)), "embedding": first(module.of(ir.Embedding))}
    for train in module.of(ir.Train):
        program = programs.get(train.program.name)
        if program is None:
            sink.add("undefined-name", f"unknown program `{train.program.name}`", train.program.span,
                     "no program of this name", did_you_mean(train.program.name, programs))
        if train.data.name not in datas:
            sink.add("undefined-name", f"unknown data `{train.data.name}`", train.data.span, "no data of this name",
                     did_you_mean(train.data.name, datas) or f"define `data {train.data.name} = gsm8k()`")
        output = output_model(program, models) if program else None
        if program is not None and train.data.name in datas:
            _check_data_shape(train, program, datas[train.data.name], output, models, sink)
        seen: dict[str, ir.Setting] = {}
        for setting in train.settings:
            if setting.key in seen and setting.key not in REPEATABLE:
                sink.add("duplicate-setting", f"`{setting.key}` is set twice", setting.span, "set again here",
                         f"the first is at line {seen[setting.key].span.line}; keep one")
                continue
            seen.setdefault(setting.key, setting)
            _check_setting(setting, output, models, names, sink)
        if program is not None and "runs" in seen:
            _check_runs(seen["runs"], program, names["lm"], sink)
        for setting in train.settings:
            if program is not None and setting.key == "optimizer":
                _check_scoring(setting, program, names["lm"], sink)
        for key in ("reward", "optimizer"):
            if key not in seen:
                sink.add("missing-setting", f"the train block has no `{key}`", train.span, f"no {key}",
                         "add for example `reward exact_match()`" if key == "reward"
                         else "add for example `optimizer random_few_shot()`")


def _lms_used(program: ir.Program, lms: Mapping[str, ir.LM]) -> list[str | None]:
    """The lm each LM step of `program` runs on, once each, in step order: the one it names, or
    the file's only lm (None when it names none and the file has several: the program check says so)."""
    only = next(iter(lms)) if len(lms) == 1 else None
    return list(dict.fromkeys(step.lm.name if step.lm else only for step in program.lm_steps()))


def _check_runs(setting: ir.Setting, program: ir.Program, lms: Mapping[str, ir.LM], sink: Sink) -> None:
    """`runs N` repeats the test evaluation to measure sampling; at temperature 0 every run
    would get the same answers, so its spread would be 0 by construction."""
    if not (isinstance(setting.value, ir.Literal) and isinstance(setting.value.value, int) and setting.value.value > 1):
        return
    used = _lms_used(program, lms)
    if not used or not all(name in lms for name in used):
        return
    temperatures = [next((a.value for a in lms[name].options if a.name == "temperature"), None) for name in used]
    if all(isinstance(t, ir.Literal) and t.value == 0 for t in temperatures):
        sink.add("invalid-value", f"`runs {setting.value.value}` would repeat one evaluation: every LM of program "
                 f"`{program.name}` has temperature 0, so each run gets the same answers", setting.value.span,
                 "identical runs", "give the LM a temperature above 0 (each run then samples with its own seed), "
                 "or remove `runs`")


def _check_scoring(setting: ir.Setting, program: ir.Program, lms: Mapping[str, ir.LM], sink: Sink) -> None:
    """`nearest_few_shot(vote_weight: w)` has each step's LM score texts, which only some providers
    can (`Provider.scores`); a weight given to a program whose LMs cannot would fail every call."""
    value = setting.value
    if not (isinstance(value, ir.Call) and value.func == "nearest_few_shot"):
        return
    arg = next((a for a in value.args if a.name == "vote_weight"), None)
    given = () if arg is None else arg.value.items if isinstance(arg.value, ir.ListValue) else (arg.value,)
    if not any(isinstance(v, ir.Literal) and v.value is not False for v in given):
        return
    for name in _lms_used(program, lms):
        lm = lms.get(name)
        if lm is None or not isinstance(lm.target.value, str):
            continue
        provider, _ = split_target(lm.target.value)
        if provider in PROVIDERS and not PROVIDERS[provider].scores:
            scoring = ", ".join(p for p, declared in PROVIDERS.items() if declared.scores)
            sink.add("invalid-value", f"`vote_weight` needs an LM that can score its examples' outputs; `{name}` "
                     f"(provider `{provider}`) cannot", arg.span, "cannot score",
                     f"use an lm of provider {scoring} for program `{program.name}`, or remove `vote_weight`")


# Which field types a loader's column of a given type can fill ("label": a class name, for
# an enum listing the labels or a str).
FILLS = {"str": ("str",), "float": ("float", "int"), "int": ("int", "float"), "bool": ("bool",),
         "label": ("enum", "str")}


def _check_data_shape(train: ir.Train, program: ir.Program, data: ir.Data, output: ir.Model | None,
                      models: Mapping[str, ir.Model], sink: Sink) -> None:
    """A loader with a fixed shape must fill every required field of the program's input and output."""
    loader = LOADERS.get(data.loader.func)
    if loader is None or loader.provides is None or len(program.inputs) != 1:
        return
    wanted = (models.get(program.inputs[0].model.name), output)
    for side, model, provided in zip(("input", "output"), wanted, loader.provides):
        for f in model.fields if model else ():
            required = not isinstance(f.type, ir.OptionalType)
            inner = ir.required_part(f.type)
            kind = inner.name if isinstance(inner, ir.NamedType) else "enum" if isinstance(inner, ir.EnumType) else None
            if f.name not in provided:
                if required:
                    sink.add("data-mismatch", f"data `{data.name}` ({data.loader.func}) has no `{f.name}` for the "
                             f"program's {side}", train.data.span, f"cannot fill `{model.name}.{f.name}`",
                             f"{data.loader.func} gives {side} fields: {', '.join(provided)}; make `{f.name}` "
                             "optional or rename it")
            elif kind not in FILLS.get(provided[f.name], ()):
                sink.add("data-mismatch", f"data `{data.name}` gives `{f.name}` as {provided[f.name]}, but "
                         f"`{model.name}.{f.name}` is not", train.data.span, "types differ",
                         f"declare `{f.name}: {_type_for(provided[f.name])}`")


def _type_for(provided: str) -> str:
    """How a field filled by a loader's column of type `provided` may be declared."""
    return 'enum("...", ...)` or `str' if provided == "label" else provided


def monitors(output: ir.Model | None) -> list[str]:
    """The names a checkpoint or early stopping may monitor for a program with this output."""
    enums = [f"f1_{f.name}" for f in (output.fields if output else ())
             if isinstance(ir.required_part(f.type), ir.EnumType)]
    return [f"{prefix}{m}" for prefix in ("val_", "") for m in (*METRICS, *enums)]


def _check_setting(setting: ir.Setting, output: ir.Model | None, models: Mapping[str, ir.Model],
                   names: Mapping[str, Mapping[str, object]], sink: Sink) -> None:
    value = setting.value
    if setting.key in ("reward", "optimizer"):
        registry = REWARDS if setting.key == "reward" else OPTIMIZERS
        if not isinstance(value, ir.Call):
            sink.add("wrong-type", f"`{setting.key}` takes a call such as `{next(iter(registry))}()`", value.span)
        elif value.func not in registry:
            sink.add("unknown-function", f"unknown {setting.key} `{value.func}`", value.span,
                     "not a reward" if setting.key == "reward" else "not an optimizer",
                     did_you_mean(value.func, registry) or f"{setting.key}s: {', '.join(registry)}")
        else:
            function = registry[value.func]
            before = len(sink.errors)
            check_args(value.args, function.signature, f"{setting.key} `{value.func}`", sink,
                       output=output, call_span=value.span, models=models)
            check_references(value, function.signature, names, sink)
            if len(sink.errors) == before:  # values of the right types: do they work together?
                bound = bind(function.signature, value.args)
                given = {name: to_python(v) for name, v in bound.items() if isinstance(v, ir.Literal)}
                for option, message in function.problems({**function.signature.defaults, **given}):
                    sink.add("invalid-value", f"{setting.key} `{value.func}`: {message}",
                             (bound[option] if option in bound else value).span, "cannot work")
    elif setting.key == "checkpoint":
        allowed = monitors(output)
        if value.monitor.name not in allowed:
            sink.add("invalid-value", f"cannot monitor `{value.monitor.name}`", value.monitor.span, "unknown metric",
                     # metric names share prefixes: only a near miss is worth suggesting
                     did_you_mean(value.monitor.name, allowed, cutoff=0.85)
                     or "monitor one of: " + ", ".join(m for m in allowed if not m.startswith("val_"))
                     + ", each also with `val_` in front (the validation set)")
        if value.mode.name not in MODES:
            sink.add("invalid-value", f"checkpoint mode must be `max` or `min`, not `{value.mode.name}`",
                     value.mode.span, "unknown mode", did_you_mean(value.mode.name, MODES))
    else:
        declared = TRAIN_SETTINGS.options[setting.key]
        expected = kind_of(TRAIN_SETTINGS.options[setting.key])
        if not matches(value, expected) or not isinstance(value, (ir.Literal, ir.MapValue)):
            sink.add("wrong-type", f"`{setting.key}` must be {type_name(expected)}", value.span, "wrong type",
                     expected_found(value, expected))
        elif setting.key == "budget":
            items = {item.name: item for item in value.items}
            for key, code, message in budget_problems({k: item.value.value for k, item in items.items()}):
                if code == "unknown-option":
                    sink.add(code, message, items[key].span, "unknown limit",
                             did_you_mean(key, BUDGET_KEYS) or "limit `calls`, `tokens` or both")
                else:
                    sink.add(code, message, items[key].value.span)
        elif not matches(value, declared):
            _out_of_range(setting.key, value, declared, sink)


def _out_of_range(key: str, value: ir.Literal, declared: AtLeast | Between | Within, sink: Sink) -> None:
    """A train setting of the right type outside its declared range, said as the range is declared."""
    if isinstance(declared, Between):
        sink.add("invalid-value", f"`{key}` must be between {declared.low} and {declared.high} (exclusive)",
                 value.span)
    elif isinstance(declared, Within) and value.value > declared.high:
        sink.add("invalid-value", f"`{key}` must be at most {declared.high}", value.span, "too many",
                 "rows in flight at once; more would exhaust connections and memory before a server answers"
                 if key == "concurrency" else None)
    else:
        sink.add("invalid-value", f"`{key}` must be at least {declared.low}", value.span)
