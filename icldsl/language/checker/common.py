"""What the rule families share: the first of each name, duplicate reports, option arguments
checked against a signature, and the shape of a program (what each step produces)."""

from __future__ import annotations

from typing import Iterable, Mapping

from .. import ir
from ..diagnostics import Sink, did_you_mean
from ..options import (EMBEDDING_NAME, FIELDS, LM_NAME, Choice, Either, Signature, Within, expected_found, matches,
                       names_a, type_name)
from ..catalogue.training import OPTIMIZERS, REWARDS


def first(items: Iterable) -> dict:
    """Name -> first definition; duplicates are reported by `check_duplicates`."""
    found: dict = {}
    for item in items:
        found.setdefault(item.name, item)
    return found


def report_duplicates(items: Iterable, what: str, sink: Sink) -> None:
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


def check_args(args: tuple[ir.Arg, ...], signature: Signature, what: str, sink: Sink,
                output: ir.Model | None = None, call_span=None, models: Mapping[str, ir.Model] | None = None
                ) -> None:
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
        if isinstance(expected, Within) and matches(arg.value, expected.kind) and not matches(arg.value, expected):
            sink.add("invalid-value", f"option `{name}` of {what} must be {type_name(expected)}", arg.value.span,
                     "out of range")
        elif not matches(arg.value, expected):
            kinds = expected.kinds if isinstance(expected, Either) else (expected,)
            choices = [v for kind in kinds if isinstance(kind, Choice) for v in kind.values]
            near = did_you_mean(arg.value.value, choices) if choices and \
                isinstance(arg.value, ir.Literal) and isinstance(arg.value.value, str) else None
            sink.add("wrong-type", f"option `{name}` of {what} must be {type_name(expected)}", arg.value.span,
                     "wrong type", near or expected_found(arg.value, expected))
        elif expected is FIELDS and output is not None:
            for item in arg.value.items:
                _check_field_path(item, output, models or {}, sink)
    for name in signature.required:
        if name not in given:
            sink.add("missing-option", f"{what} needs option `{name}`", call_span, "missing option")


def _check_field_path(item: ir.Literal, output: ir.Model, models: Mapping[str, ir.Model], sink: Sink) -> None:
    """A mask entry: a field of the output, or a dotted path into its nested models (`steps.value`)."""
    model = output
    for part in item.value.split("."):
        if model is None:
            sink.add("unknown-field", f"`{item.value}` goes below a field that holds no model", item.span,
                     "not a nested field", "only fields whose type is a model (or a list of one) have fields")
            return
        fields = {f.name: f for f in model.fields}
        if part not in fields:
            sink.add("unknown-field", f"model `{model.name}` has no field `{part}`", item.span,
                     "not a field of the program's output",
                     did_you_mean(part, fields) or f"fields: {', '.join(fields)}")
            return
        model = models.get(_inner_model(fields[part].type) or "")


def _inner_model(t: ir.TypeExpr) -> str | None:
    """The model a field holds, through lists and optionals."""
    return next(ir.model_names(t), None)


def check_references(call: ir.Call, signature: Signature, names: Mapping[str, Mapping[str, object]],
                      sink: Sink) -> None:
    """Options naming an `lm` or an `embedding` name one the file defines."""
    kinds = {name: kind for name, t in signature.options.items()
             for kind, marker in (("lm", LM_NAME), ("embedding", EMBEDDING_NAME)) if names_a(t, marker)}
    for arg in call.args:
        kind = kinds.get(arg.name or "")
        if kind and isinstance(arg.value, ir.Ref) and arg.value.name not in names[kind]:
            sink.add("undefined-name", f"unknown {kind} `{arg.value.name}`", arg.value.span, f"no {kind} of this name",
                     did_you_mean(arg.value.name, names[kind]) or f'define `{kind} {arg.value.name} = "provider/model"`')


def referenced(module: ir.Module, marker: object) -> set[str]:
    """Names of lms (or embeddings) that train blocks' rewards and optimizers use."""
    found = set()
    for train in module.of(ir.Train):
        for setting in train.settings:
            if isinstance(setting.value, ir.Call) and setting.key in ("reward", "optimizer"):
                registry = REWARDS if setting.key == "reward" else OPTIMIZERS
                function = registry.get(setting.value.func)
                for arg in setting.value.args if function else ():
                    if names_a(function.signature.options.get(arg.name or ""), marker) and \
                            isinstance(arg.value, ir.Ref):
                        found.add(arg.value.name)
    return found


def type_names(t: ir.TypeExpr, *, through_lists: bool = True) -> Iterable[str]:
    return (n.name for n in ir.named_types(t, through_lists=through_lists))


def item_steps(item: ir.Step | ir.Branch) -> tuple[ir.Step, ...]:
    """The LM steps of one program statement: a step, or a branch's arms."""
    return tuple(arm.step for arm in item.arms) if isinstance(item, ir.Branch) else (item,)


def produces(item: ir.Step | ir.Branch) -> str | None:
    """The model a step or branch yields (a branch: its first arm's)."""
    if isinstance(item, ir.Branch):
        return item.arms[0].step.model.name if item.arms else None
    return item.model.name


def program_values(program: ir.Program) -> dict[str, str | None]:
    """Name -> model name of every value a program defines: its input and its steps."""
    values = {inp.name: inp.model.name for inp in program.inputs}
    values.update((item.name, produces(item)) for item in program.steps)
    return values


def model_fields(name: str | None, models: Mapping[str, ir.Model]) -> dict[str, ir.Field]:
    model = models.get(name) if name else None
    return {f.name: f for f in model.fields} if model else {}


def dependencies(item: ir.Step | ir.Branch) -> set[str]:
    if isinstance(item, ir.Branch):
        return {item.on.name} | {r.name for arm in item.arms for r in arm.step.sources}
    return {r.name for r in item.sources}


def output_model(program: ir.Program, models: Mapping[str, ir.Model]) -> ir.Model | None:
    """The model the program outputs (its outputs' fields merged), or None when unresolvable."""
    if len(program.outputs) != 1:
        return None
    values = program_values(program)
    refs = program.outputs[0].refs
    fields = [f for ref in refs for f in model_fields(values.get(ref.name), models).values()]
    if not all(values.get(ref.name) in models for ref in refs):
        return None
    return ir.Model(" + ".join(str(values[r.name]) for r in refs), tuple(fields), program.span)
