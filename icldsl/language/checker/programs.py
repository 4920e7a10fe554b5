"""Rules for `program` blocks and tools: references resolve, step inputs and outputs fit,
branches and merges are well formed, no step depends on itself."""

from __future__ import annotations

from typing import Mapping

from .. import ir
from ..diagnostics import Sink, did_you_mean
from ..vocabulary import function_ref_problem
from .common import dependencies, first, item_steps, model_fields, program_values


def check_programs(module: ir.Module, sink: Sink) -> None:
    models = first(module.of(ir.Model))
    lms = first(module.of(ir.LM))
    tools = first(module.of(ir.Tool))
    for program in module.of(ir.Program):
        for part, items in (("input", program.inputs), ("output", program.outputs)):
            if len(items) != 1:
                span = items[1].span if items else program.span
                sink.add("program-shape", f"program `{program.name}` must have exactly one {part} statement, "
                         f"found {len(items)}", span, help=f"write `{part} ...` once in the program")
        values = program_values(program)
        for inp in program.inputs:
            _resolve_model(inp.model, models, sink)
        for item in program.steps:
            if isinstance(item, ir.Branch):
                _check_branch(item, values, models, sink)
            for step in item_steps(item):
                _check_step(step, values, models, lms, tools, sink)
        for out in program.outputs:
            for ref in out.refs:
                _check_source(ref, values, sink)
            _check_merge(out.refs, values, models, sink, "outputs")
        _check_cycles(program, sink)


def _resolve_model(ref: ir.Ref, models: Mapping[str, ir.Model], sink: Sink) -> None:
    if ref.name not in models:
        sink.add("undefined-name", f"unknown model `{ref.name}`", ref.span, "no model of this name",
                 did_you_mean(ref.name, models) or f"define `model {ref.name} {{ ... }}`")


def _check_source(ref: ir.Ref, values: Mapping[str, str | None], sink: Sink) -> bool:
    if ref.name not in values:
        sink.add("undefined-name", f"unknown step or input `{ref.name}`", ref.span, "not defined in this program",
                 did_you_mean(ref.name, values))
        return False
    if len(ref.path) > 1:
        sink.add("invalid-value", f"`{ref}` reads a single field; steps take whole inputs and outputs", ref.span,
                 "field access", f"use `{ref.name}`")
        return False
    return True


def _check_merge(refs: tuple[ir.Ref, ...], values: Mapping[str, str | None], models: Mapping[str, ir.Model],
                 sink: Sink, what: str) -> None:
    """Merged values (`from a + b`, `output a, b`) must not both carry a field."""
    owner: dict[str, str] = {}
    seen: set[str] = set()
    for ref in refs:
        if ref.name in seen:
            sink.add("duplicate-name", f"`{ref.name}` is merged with itself", ref.span, "named again here",
                     f"name `{ref.name}` once")
            continue
        seen.add(ref.name)
        for name in model_fields(values.get(ref.name), models):
            if name in owner and owner[name] != ref.name:
                sink.add("field-conflict", f"field `{name}` comes from both `{owner[name]}` and `{ref.name}`",
                         ref.span, f"merged {what} clash", "rename the field in one of the models")
            owner.setdefault(name, ref.name)


def _check_step(step: ir.Step, values: Mapping[str, str | None], models: Mapping[str, ir.Model],
                lms: Mapping[str, ir.LM], tools: Mapping[str, ir.Tool], sink: Sink) -> None:
    _resolve_model(step.model, models, sink)
    if all([_check_source(ref, values, sink) for ref in step.sources]):
        _check_merge(step.sources, values, models, sink, "inputs")
    _check_step_lm(step, lms, sink)
    fields = model_fields(step.model.name, models)
    if step.kind == "decide" and fields and not any(isinstance(f.type, ir.EnumType) for f in fields.values()):
        sink.add("wrong-type", f"`decide` chooses among enum labels, and model `{step.model.name}` has no enum field",
                 step.model.span, "no enum field", 'add a field such as `label: enum("a", "b")`, or use `generate`')
    if step.kind == "chain_of_thought" and "thinking" in fields:
        sink.add("field-conflict", f"`chain_of_thought` adds a `thinking` field, and `{step.model.name}` has one",
                 step.model.span, "already has `thinking`", "use `generate`, which fills the model's own field")
    if step.kind == "agent":
        if not step.tools:
            sink.add("missing-option", f"agent step `{step.name}` has no tools", step.span, "no tools",
                     "add `tools [name, ...]` naming `tool` definitions")
        for ref in step.tools:
            if ref.name not in tools:
                sink.add("undefined-name", f"unknown tool `{ref.name}`", ref.span, "no tool of this name",
                         did_you_mean(ref.name, tools) or f'define `tool {ref.name} = python("module:function")`')
        if step.max_steps is not None and not (isinstance(step.max_steps.value, int) and step.max_steps.value >= 1):
            sink.add("invalid-value", "`max_steps` must be a whole number of at least 1", step.max_steps.span)
    else:
        for clause, present in (("tools", bool(step.tools)), ("max_steps", step.max_steps is not None)):
            if present:
                sink.add("unknown-option", f"`{clause}` belongs to `agent` steps, not `{step.kind}`", step.span,
                         f"a {step.kind} step", f"remove `{clause}`, or make the step an `agent`")


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


def _check_branch(branch: ir.Branch, values: Mapping[str, str | None], models: Mapping[str, ir.Model],
                  sink: Sink) -> None:
    on = branch.on
    choices: tuple[str, ...] | None = None
    if on.name not in values:
        sink.add("undefined-name", f"unknown step or input `{on.name}`", on.span, "not defined in this program",
                 did_you_mean(on.name, values))
    elif len(on.path) != 2:
        sink.add("invalid-value", f"`branch` routes on one field of a value, like `{on.name}.label`", on.span,
                 "not a field", "name the field to route on")
    else:
        fields = model_fields(values[on.name], models)
        field = fields.get(on.path[1])
        if field is None and fields:
            sink.add("unknown-field", f"model `{values[on.name]}` has no field `{on.path[1]}`", on.span,
                     "no such field", did_you_mean(on.path[1], fields) or f"fields: {', '.join(fields)}")
        elif field is not None:
            inner = ir.required_part(field.type)
            if isinstance(inner, ir.EnumType):
                choices = inner.choices
            elif not (isinstance(inner, ir.NamedType) and inner.name in ("str", "bool", "int")):
                sink.add("wrong-type", f"cannot branch on `{on}`: route on an enum, str, bool or int field",
                         on.span, "not a label")
    labels: dict[str | None, ir.Arm] = {}
    for arm in branch.arms:
        if arm.label in labels:
            what = "the default arm `_`" if arm.label is None else f"label {arm.label!r}"
            sink.add("duplicate-name", f"{what} appears twice in branch `{branch.name}`", arm.span, "again here")
        labels.setdefault(arm.label, arm)
        if choices is not None and arm.label is not None and arm.label not in choices:
            sink.add("invalid-value", f"{arm.label!r} is not a label of `{on}`", arm.span, "no such label",
                     did_you_mean(arm.label, choices) or f"labels: {', '.join(map(repr, choices))}")
    if None not in labels and choices is not None and set(choices) - set(labels):
        missing = ", ".join(repr(c) for c in choices if c not in labels)
        sink.add("incomplete-branch", f"branch `{branch.name}` has no arm for {missing}", branch.span,
                 "labels without an arm", "add those arms, or a default arm `_ => ...`")
    elif None not in labels and choices is None:
        sink.add("incomplete-branch", f"branch `{branch.name}` has no default arm for values it does not list",
                 branch.span, "no default arm", "add `_ => ...`; without it such a value fails the prediction")
    first = branch.arms[0].step.model.name if branch.arms else None
    for arm in branch.arms[1:]:
        if arm.step.model.name != first:
            sink.add("branch-mismatch", f"the arms of branch `{branch.name}` make different models", arm.step.model.span,
                     f"this arm makes `{arm.step.model.name}`",
                     f"every arm must make the same model: the first makes `{first}`")


def _check_cycles(program: ir.Program, sink: Sink) -> None:
    """Steps may come in any order, but no step may depend on itself. Depth first with a stack
    of its own, not recursion: a chain of thousands of steps is a file, not a crash."""
    deps = {item.name: dependencies(item) for item in program.steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[str] = set()
    spans = {item.name: item.span for item in program.steps}
    for root in deps:
        if root in state:
            continue
        state[root] = 1
        path, work = [root], [iter(sorted(deps[root]))]
        while work:
            dep = next(work[-1], None)
            if dep is None:  # every dependency of the last step on the path is seen
                work.pop()
                state[path.pop()] = 2
            elif dep not in deps:
                continue
            elif state.get(dep) == 1 and dep not in reported:
                cycle = path[path.index(dep):] + [dep]
                reported.update(cycle)
                sink.add("cycle", f"step `{dep}` depends on itself: {' -> '.join(cycle)}", spans[dep],
                         "part of a cycle", "a step can read the input and other steps, but not through itself")
            elif dep not in state:
                state[dep] = 1
                path.append(dep)
                work.append(iter(sorted(deps[dep])))


def check_tools(module: ir.Module, sink: Sink) -> None:
    """`tool name = python("module:function")`; importing it is the compiler's job."""
    for tool in module.of(ir.Tool):
        call = tool.impl
        if call.func != "python":
            sink.add("unknown-function", f"a tool is made with `python(...)`, not `{call.func}(...)`", call.span,
                     "not a tool maker", 'write `python("package.module:function")`')
            continue
        args = [a.value for a in call.args]
        if len(args) != 1 or any(a.name for a in call.args) or not (
                isinstance(args[0], ir.Literal) and isinstance(args[0].value, str)):
            sink.add("wrong-type", "`python(...)` takes one string, \"module:function\"", call.span, "wrong arguments")
        elif problem := function_ref_problem(args[0].value):
            sink.add("invalid-value", problem, args[0].span,
                     "not module:function", 'for example "icldsl.tools:calculator"')
