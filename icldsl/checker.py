"""Named passes over the IR that find every mistake before any LM call.

Each pass is `(module, sink) -> None` and reports through the sink; `check`
runs them all and raises one CheckError carrying every error found.
"""

from __future__ import annotations

from collections import Counter
from typing import Iterable, Mapping

from . import ir
from .datasets import LOADERS
from .diagnostics import CheckError, Sink, did_you_mean
from .lm import PROVIDERS, split_target
from .options import FIELDS, Signature, matches, type_name
from .training.optimizers import OPTIMIZERS
from .training.rewards import REWARDS

SETTING_TYPES: Mapping[str, type] = {
    "epochs": int,
    "batch_size": int,
    "runs": int,
    "concurrency": int,
    "seed": int,
    "validation_split": float,
}
MONITORS = ("reward", "val_reward")
MODES = ("max", "min")


def _first(items: Iterable) -> dict:
    """Name -> first definition; duplicates are reported by `check_duplicates`."""
    found: dict = {}
    for item in items:
        found.setdefault(item.name, item)
    return found


def _report_duplicates(items: Iterable, what: str, sink: Sink) -> None:
    """`what` is a format string for the name, such as "field `{}` of model `A`"."""
    seen: dict = {}
    for item in items:
        if item.name in seen:
            sink.add(
                "duplicate-name",
                f"{what.format(item.name)} is defined twice",
                item.span,
                "defined again here",
                f"the first definition is at line {seen[item.name].span.line}; rename or remove one",
            )
        else:
            seen[item.name] = item


def check_duplicates(module: ir.Module, sink: Sink) -> None:
    for kind, what in ((ir.Model, "model"), (ir.LM, "lm"), (ir.Program, "program"), (ir.Data, "data")):
        _report_duplicates(module.of(kind), what + " `{}`", sink)
    for model in module.of(ir.Model):
        _report_duplicates(model.fields, "field `{}` of model `" + model.name + "`", sink)
    for program in module.of(ir.Program):
        _report_duplicates((*program.inputs, *program.steps), "step `{}` of program `" + program.name + "`", sink)


def check_models(module: ir.Module, sink: Sink) -> None:
    models = _first(module.of(ir.Model))
    known = (*ir.BUILTIN_TYPES, *models)

    def visit(t: ir.TypeExpr) -> None:
        if isinstance(t, ir.NamedType) and t.name not in known:
            sink.add("undefined-name", f"unknown type `{t.name}`", t.span, "not a builtin type or a model",
                     did_you_mean(t.name, known) or f"define `model {t.name} {{ ... }}` or use one of "
                     + ", ".join(ir.BUILTIN_TYPES))
        elif isinstance(t, ir.ListType):
            visit(t.item)
        elif isinstance(t, ir.OptionalType):
            visit(t.inner)
        elif isinstance(t, ir.EnumType):
            repeated = [c for c, n in Counter(t.choices).items() if n > 1]
            if repeated:
                sink.add("invalid-value", f"enum choice {repeated[0]!r} is listed twice", t.span)

    for model in models.values():
        for f in model.fields:
            visit(f.type)
    _check_model_cycles(models, sink)


def _named(t: ir.TypeExpr) -> Iterable[str]:
    if isinstance(t, ir.NamedType):
        yield t.name
    elif isinstance(t, ir.ListType):
        yield from _named(t.item)
    elif isinstance(t, ir.OptionalType):
        yield from _named(t.inner)


def _check_model_cycles(models: Mapping[str, ir.Model], sink: Sink) -> None:
    edges = {m.name: {n for f in m.fields for n in _named(f.type) if n in models} for m in models.values()}
    reported: set[str] = set()
    for start in models:
        stack, path = [(start, iter(sorted(edges[start])))], [start]
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
            elif child == start and start not in reported:
                reported.update(path)
                cycle = " -> ".join([*path, start])
                sink.add("invalid-value", f"model `{start}` contains itself: {cycle}", models[start].span,
                         "recursive model", "models cannot contain themselves; use a separate model for the inner part")
            elif child not in path:
                stack.append((child, iter(sorted(edges[child]))))
                path.append(child)


def _check_args(args: tuple[ir.Arg, ...], signature: Signature, what: str, sink: Sink,
                output: ir.Model | None = None, call_span=None) -> None:
    """Option names, positional count, types and required options of one call or options block."""
    given: dict[str, ir.Arg] = {}
    positional = list(signature.positional)
    for arg in args:
        name = arg.name
        if name is None:
            if not positional:
                sink.add("unknown-option", f"{what} takes {len(signature.positional) or 'no'} positional "
                         f"argument{'s' if len(signature.positional) != 1 else ''}", arg.span, "extra argument",
                         "name it: `option: value`" if signature.options else None)
                continue
            name = positional.pop(0)
        elif name not in signature.options:
            hint = did_you_mean(name, signature.options)
            known = ", ".join(f"`{o}`" for o in signature.options) or "none"
            sink.add("unknown-option", f"{what} has no option `{name}`", arg.span, "unknown option",
                     hint or f"options of {what}: {known}")
            continue
        if name in given:
            sink.add("duplicate-name", f"option `{name}` of {what} is given twice", arg.span, "given again here")
            continue
        given[name] = arg
        expected = signature.options[name]
        if not matches(arg.value, expected):
            sink.add("wrong-type", f"option `{name}` of {what} must be {type_name(expected)}", arg.value.span,
                     "wrong type")
        elif expected is FIELDS and output is not None:
            fields = [f.name for f in output.fields]
            for item in arg.value.items:
                if item.value not in fields:
                    sink.add("unknown-field", f"model `{output.name}` has no field `{item.value}`", item.span,
                             "not a field of the program's output",
                             did_you_mean(item.value, fields) or f"fields: {', '.join(fields)}")
    for name in signature.required:
        if name not in given:
            sink.add("missing-option", f"{what} needs option `{name}`", call_span, "missing option")


def check_lms(module: ir.Module, sink: Sink) -> None:
    for lm in module.of(ir.LM):
        provider, model = split_target(lm.target.value)
        if provider not in PROVIDERS:
            sink.add("unknown-provider", f"unknown LM provider `{provider or lm.target.value}`", lm.target.span,
                     "not a known provider", did_you_mean(provider, PROVIDERS)
                     or "write `provider/model`, with provider one of: " + ", ".join(PROVIDERS))
            continue
        options = PROVIDERS[provider].options
        _check_args(lm.options, Signature(options), f"lm `{lm.name}` ({provider})", sink)
        for arg in lm.options:
            value = arg.value
            if not isinstance(value, ir.Literal) or not matches(value, options.get(arg.name, object)):
                continue
            if arg.name == "temperature" and not 0 <= value.value <= 2:
                sink.add("invalid-value", "temperature must be between 0 and 2", value.span)
            elif arg.name != "temperature" and isinstance(value.value, (int, float)) and value.value <= 0 \
                    and arg.name != "seed":
                sink.add("invalid-value", f"`{arg.name}` must be greater than 0", value.span)


def check_programs(module: ir.Module, sink: Sink) -> None:
    models = _first(module.of(ir.Model))
    lms = _first(module.of(ir.LM))
    for program in module.of(ir.Program):
        for part, items in (("input", program.inputs), ("output", program.outputs)):
            if len(items) != 1:
                span = items[1].span if items else program.span
                sink.add("program-shape", f"program `{program.name}` must have exactly one {part}, "
                         f"found {len(items)}", span, help=f"write `{part} ...` once in the program")
        defined: dict[str, str] = {}  # step or input name -> model name
        later = {s.name for s in program.steps}
        for inp in program.inputs:
            _resolve_model(inp.model, models, sink)
            defined[inp.name] = inp.model.name
        for step in program.steps:
            _resolve_model(step.model, models, sink)
            for source in step.sources:
                _check_source(source, defined, later, sink)
            _check_step_lm(step, lms, sink)
            defined[step.name] = step.model.name
        for out in program.outputs:
            _check_source(out.ref, defined, set(), sink)


def _resolve_model(ref: ir.Ref, models: Mapping[str, ir.Model], sink: Sink) -> None:
    if ref.name not in models:
        sink.add("undefined-name", f"unknown model `{ref.name}`", ref.span, "no model of this name",
                 did_you_mean(ref.name, models) or f"define `model {ref.name} {{ ... }}`")


def _check_source(ref: ir.Ref, defined: Mapping[str, str], later: set[str], sink: Sink) -> None:
    if ref.name not in defined:
        hint = (f"`{ref.name}` is defined after this line; a step can only use the input and earlier steps"
                if ref.name in later else did_you_mean(ref.name, defined))
        sink.add("undefined-name", f"unknown step or input `{ref.name}`", ref.span, "not defined before here", hint)
    elif len(ref.path) > 1:
        sink.add("invalid-value", f"`{ref}` reads a single field; steps take whole inputs and outputs", ref.span,
                 "field access", f"use `{ref.name}`")


def _check_step_lm(step: ir.Step, lms: Mapping[str, ir.LM], sink: Sink) -> None:
    if step.lm is not None:
        if step.lm.name not in lms:
            sink.add("undefined-name", f"unknown lm `{step.lm.name}`", step.lm.span, "no lm of this name",
                     did_you_mean(step.lm.name, lms) or f"define `lm {step.lm.name} = \"provider/model\"`")
    elif not lms:
        sink.add("undefined-name", f"step `{step.name}` needs an LM, and none is defined", step.span,
                 help='define one, for example `lm solver = "local/smollm2-135m"`')
    elif len(lms) > 1:
        sink.add("ambiguous-lm", f"step `{step.name}` does not say which LM to use", step.span,
                 "which LM?", f"add `using <lm>`, one of: {', '.join(lms)}")


def check_data(module: ir.Module, sink: Sink) -> None:
    for data in module.of(ir.Data):
        call = data.loader
        loader = LOADERS.get(call.func)
        if loader is None:
            sink.add("unknown-function", f"unknown data loader `{call.func}`", call.span, "not a loader",
                     did_you_mean(call.func, LOADERS) or f"loaders: {', '.join(LOADERS)}")
            continue
        signature = Signature(loader.options, positional=loader.positional,
                              required=loader.required)
        _check_args(call.args, signature, f"loader `{call.func}`", sink, call_span=call.span)


def check_trains(module: ir.Module, sink: Sink) -> None:
    programs = _first(module.of(ir.Program))
    datas = _first(module.of(ir.Data))
    models = _first(module.of(ir.Model))
    for train in module.of(ir.Train):
        program = programs.get(train.program.name)
        if program is None:
            sink.add("undefined-name", f"unknown program `{train.program.name}`", train.program.span,
                     "no program of this name", did_you_mean(train.program.name, programs))
        if train.data.name not in datas:
            sink.add("undefined-name", f"unknown data `{train.data.name}`", train.data.span, "no data of this name",
                     did_you_mean(train.data.name, datas) or f"define `data {train.data.name} = gsm8k()`")
        output = _output_model(program, models) if program else None
        seen: dict[str, ir.Setting] = {}
        for setting in train.settings:
            if setting.key in seen:
                sink.add("duplicate-setting", f"`{setting.key}` is set twice", setting.span, "set again here",
                         f"the first is at line {seen[setting.key].span.line}; keep one")
                continue
            seen[setting.key] = setting
            _check_setting(setting, output, sink)
        for key in ("reward", "optimizer"):
            if key not in seen:
                sink.add("missing-setting", f"the train block has no `{key}`", train.span, f"no {key}",
                         "add for example `reward exact_match()`" if key == "reward"
                         else "add for example `optimizer random_few_shot()`")


def _output_model(program: ir.Program, models: Mapping[str, ir.Model]) -> ir.Model | None:
    """The model the program outputs, or None when that is not resolvable."""
    if len(program.outputs) != 1:
        return None
    target = program.outputs[0].ref.name
    source = {s.name: s.model.name for s in (*program.inputs, *program.steps)}.get(target)
    return models.get(source) if source else None


def _check_setting(setting: ir.Setting, output: ir.Model | None, sink: Sink) -> None:
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
            _check_args(value.args, registry[value.func].signature, f"{setting.key} `{value.func}`", sink,
                        output=output, call_span=value.span)
    elif setting.key == "checkpoint":
        if value.monitor.name not in MONITORS:
            sink.add("invalid-value", f"cannot monitor `{value.monitor.name}`", value.monitor.span, "unknown metric",
                     did_you_mean(value.monitor.name, MONITORS) or f"monitor one of: {', '.join(MONITORS)}")
        if value.mode.name not in MODES:
            sink.add("invalid-value", f"checkpoint mode must be `max` or `min`, not `{value.mode.name}`",
                     value.mode.span, "unknown mode", did_you_mean(value.mode.name, MODES))
    else:
        expected = SETTING_TYPES[setting.key]
        if not isinstance(value, ir.Literal) or not matches(value, expected):
            sink.add("wrong-type", f"`{setting.key}` must be {type_name(expected)}", value.span, "wrong type")
        elif setting.key == "validation_split" and not 0 < value.value < 1:
            sink.add("invalid-value", "`validation_split` must be between 0 and 1 (exclusive)", value.span)
        elif setting.key != "seed" and expected is int and value.value < 1:
            sink.add("invalid-value", f"`{setting.key}` must be at least 1", value.span)


def check_unused(module: ir.Module, sink: Sink) -> None:
    used: set[str] = set()
    for model in module.of(ir.Model):
        used.update(n for f in model.fields for n in _named(f.type))
    lms_used: set[str] = set()
    lms = _first(module.of(ir.LM))
    for program in module.of(ir.Program):
        used.update(i.model.name for i in program.inputs)
        for step in program.steps:
            used.add(step.model.name)
            if step.lm is not None:
                lms_used.add(step.lm.name)
            else:  # the only LM, or an ambiguity already reported as an error
                lms_used.update(lms)
    for model in module.of(ir.Model):
        if model.name not in used:
            sink.add("unused-name", f"model `{model.name}` is never used", model.span, "unused",
                     "remove it, or use it in a program")
    for lm in lms.values():
        if lm.name not in lms_used:
            sink.add("unused-name", f"lm `{lm.name}` is never used", lm.span, "unused",
                     f"remove it, or add `using {lm.name}` to a step")


CHECKS = (check_duplicates, check_models, check_lms, check_programs, check_data, check_trains, check_unused)


def check(module: ir.Module) -> list:
    """Run every pass; raise CheckError if any error was found, else return the warnings."""
    sink = Sink()
    for check_pass in CHECKS:
        check_pass(module, sink)
    if sink.errors:
        raise CheckError(sink.diagnostics)
    return sink.diagnostics
