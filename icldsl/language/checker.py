"""Named passes over the IR that find every mistake before any LM call.

Each pass is `(module, sink) -> None` and reports through the sink; `check`
runs them all and raises one CheckError carrying every error found.

Over 500 lines because it is the language's one list of rules: the passes are short
and independent, but they share the name tables, the option signatures and the
did-you-mean help, and a reader looking for "what does the checker refuse" reads them
in order here (each code's golden case is in tests/golden/errors/).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Iterable, Mapping

from . import ir
from ..datasets import LOADERS
from .diagnostics import CheckError, Sink, did_you_mean
from ..lm import EMBEDDERS, PROVIDERS, embedding_options, split_target
from .parser import MAX_DEPTH
from .patterns import pattern_problem
from .options import (EMBEDDING_NAME, FIELDS, LM_NAME, MAX_CONCURRENCY, Choice, Either, Signature, Within, bind,
                      expected_found, matches, names_a, to_python, type_name, url_secrets)
from .specs import TRAIN_SETTINGS
from ..training.registry import OPTIMIZERS, REWARDS

BUDGET_KEYS = ("calls", "tokens")
REPEATABLE = ("optimizer",)  # several optimizer lines chain
# What a checkpoint or early stopping may monitor, besides `f1_<field>` for each enum field
# of the output; each also with `val_` in front.
METRICS = ("reward", "accuracy", "failures", "calls", "tokens")
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
    for kind, what in ((ir.Model, "model"), (ir.LM, "lm"), (ir.Embedding, "embedding"), (ir.Tool, "tool"),
                       (ir.Program, "program"), (ir.Data, "data")):
        _report_duplicates(module.of(kind), what + " `{}`", sink)
    for model in module.of(ir.Model):
        _report_duplicates(model.fields, "field `{}` of model `" + model.name + "`", sink)
    for program in module.of(ir.Program):
        _report_duplicates((*program.inputs, *program.steps), "step `{}` of program `" + program.name + "`", sink)


# Constraints each type accepts, with the type of their value.
CONSTRAINTS: Mapping[str, Mapping[str, type]] = {
    "int": {"min": int, "max": int},
    "float": {"min": float, "max": float},
    "str": {"min_length": int, "max_length": int, "pattern": str},
    "list": {"min_items": int, "max_items": int},
}


def check_models(module: ir.Module, sink: Sink) -> None:
    models = _first(module.of(ir.Model))
    known = (*ir.BUILTIN_TYPES, *models)

    for model in models.values():
        for f in model.fields:
            for t in ir.type_parts(f.type):
                if isinstance(t, ir.NamedType) and t.name not in known:
                    sink.add("undefined-name", f"unknown type `{t.name}`", t.span, "not a builtin type or a model",
                             did_you_mean(t.name, known) or f"define `model {t.name} {{ ... }}` or use one of "
                             + ", ".join(ir.BUILTIN_TYPES))
                elif isinstance(t, ir.EnumType):
                    repeated = [c for c, n in Counter(t.choices).items() if n > 1]
                    if repeated:
                        sink.add("invalid-value", f"enum choice {repeated[0]!r} is listed twice", t.span)
                if ir.constraint_kind(t):
                    _check_constraints(t, sink)
    _check_model_cycles(models, sink)


def _check_constraints(t: ir.NamedType | ir.ListType, sink: Sink) -> None:
    kind = ir.constraint_kind(t)
    allowed = CONSTRAINTS.get(kind, {})
    what = f"type `{kind}`" if kind in CONSTRAINTS or kind in ir.BUILTIN_TYPES else f"model `{kind}`"
    if not allowed:
        sink.add("unknown-option", f"{what} takes no constraints", t.constraints[0].span, "not allowed here",
                 "constraints apply to int, float, str and list")
        return
    _check_args(t.constraints, Signature(allowed), what, sink)
    given = {a.name: a.value.value for a in t.constraints
             if isinstance(a.value, ir.Literal) and a.name in allowed and matches(a.value, allowed[a.name])}
    for low, high in (("min", "max"), ("min_length", "max_length"), ("min_items", "max_items")):
        if low in given and high in given and given[low] > given[high]:
            sink.add("invalid-value", f"`{low}` is greater than `{high}`", t.span, "nothing can satisfy this")
    for name in ("min_length", "max_length", "min_items", "max_items"):
        if given.get(name, 0) < 0:
            sink.add("invalid-value", f"`{name}` cannot be negative", t.span)
    pattern = next((a.value for a in t.constraints if a.name == "pattern" and "pattern" in given), None)
    problem = pattern_problem(pattern.value) if pattern is not None else None
    if problem:
        sink.add("invalid-value", f"`pattern` cannot be used: {problem}", pattern.span, "bad pattern",
                 "field patterns follow Rust's regex syntax: no look-around or back-references, and a bounded size")


def _names(t: ir.TypeExpr, *, through_lists: bool = True) -> Iterable[str]:
    return (n.name for n in ir.named_types(t, through_lists=through_lists))


def _check_model_cycles(models: Mapping[str, ir.Model], sink: Sink) -> None:
    """A model may contain itself only through a list (a tree), never directly; and no chain
    of models nests deeper than MAX_DEPTH. Linear in the models' fields, without recursion,
    so thousands of models cost milliseconds."""
    order = {name: i for i, name in enumerate(models)}
    direct = {m.name: sorted({n for f in m.fields for n in _names(f.type, through_lists=False) if n in models})
              for m in models.values()}
    for component in _components(direct):
        first = min(component, key=order.__getitem__)
        if len(component) > 1 or first in direct[first]:
            cycle = " -> ".join(_cycle(first, direct, set(component)))
            sink.add("invalid-value", f"model `{first}` contains itself: {cycle}", models[first].span,
                     "recursive model", "a model can contain itself only through a list, as in "
                     "`children: list[Node]`")
    nested = {m.name: sorted({n for f in m.fields for n in _names(f.type) if n in models}) for m in models.values()}
    depth: dict[str, int] = {}
    for component in _components(nested):  # each after every component it reaches
        inner = max((depth[n] for name in component for n in nested[name] if n not in component), default=0)
        for name in component:
            depth[name] = inner + 1
    deepest = min((name for name in models if depth[name] > MAX_DEPTH), key=order.__getitem__, default=None)
    if deepest is not None:
        sink.add("nesting-too-deep", f"model `{deepest}` nests models {depth[deepest]} levels deep, more than "
                 f"{MAX_DEPTH}", models[deepest].span, "too deep", "flatten the models: a chain this long is not meant")


def _components(edges: Mapping[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of a graph (Tarjan's algorithm, iterative), each listed
    after every component it has an edge to."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(edges[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(component)
    return found


def _cycle(start: str, edges: Mapping[str, list[str]], within: set[str]) -> list[str]:
    """The shortest way from `start` back to itself inside its component, as names."""
    came: dict[str, str] = {}
    queue = [start]
    for node in queue:
        for child in edges[node]:
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came[path[-1]])
                return [*reversed(path), start]
            if child in within and child not in came:
                came[child] = node
                queue.append(child)
    return [start, start]


def _check_args(args: tuple[ir.Arg, ...], signature: Signature, what: str, sink: Sink,
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


SECRET_OPTIONS = ("api_key",)  # options that may only come from the environment


def _check_fallback(lm: ir.LM, ref: ir.Ref, lms: Mapping[str, ir.LM], sink: Sink) -> None:
    """`fallback` names another lm, and following fallbacks never comes back to `lm`."""
    if ref.name not in lms:
        sink.add("undefined-name", f"unknown lm `{ref.name}`", ref.span, "no lm of this name",
                 did_you_mean(ref.name, lms) or f"define `lm {ref.name} = \"provider/model\"`")
        return
    chain, name = [lm.name], ref.name
    while name in lms and name not in chain:
        chain.append(name)
        name = next((str(a.value) for a in lms[name].options
                     if a.name == "fallback" and matches(a.value, LM_NAME)), "")
    if name == lm.name:
        sink.add("invalid-value", f"lm `{lm.name}` falls back to itself: {' -> '.join([*chain, name])}",
                 ref.span, "fallback cycle", "a fallback must end at an lm without one")


def _url_credentials(value: ir.Value, owner: str, option: str, sink: Sink) -> bool:
    """A URL with a user name, password or token in it (`http://user:key@host`,
    `http://host/v1?api_key=...`) holds a secret too, alone or in a list of URLs."""
    items = value.items if isinstance(value, ir.ListValue) else (value,)
    found = [item for item in items if isinstance(item, ir.Literal) and isinstance(item.value, str)
             and url_secrets(item.value)]
    instead = '[env("NAME"), ...]' if isinstance(value, ir.ListValue) else 'env("NAME")'
    for item in found:
        sink.add("secret-in-source", f"`{option}` of {owner} holds credentials in its URL", item.span,
                 "a secret in the source", f"put the URL, credentials and all, in a variable: `{option}: {instead}`")
    return bool(found)


def check_lms(module: ir.Module, sink: Sink) -> None:
    lms = _first(module.of(ir.LM))
    for lm in module.of(ir.LM):
        provider, model = split_target(lm.target.value)
        if provider not in PROVIDERS:
            sink.add("unknown-provider", f"unknown LM provider `{provider or lm.target.value}`", lm.target.span,
                     "not a known provider", did_you_mean(provider, PROVIDERS)
                     or "write `provider/model`, with provider one of: " + ", ".join(PROVIDERS))
            continue
        if lm.target.value.startswith("local:") and not model.endswith(".gguf"):
            sink.add("invalid-value", f"`{lm.target.value}` does not name a model file", lm.target.span,
                     "not a .gguf path", 'write the path of a GGUF file: `"local:/path/to/model.gguf"`')
        options = PROVIDERS[provider].options
        _check_args(lm.options, Signature(options), f"lm `{lm.name}` ({provider})", sink)
        for arg in lm.options:
            value = arg.value
            if arg.name == "fallback" and matches(value, LM_NAME):
                _check_fallback(lm, value, lms, sink)
            if _url_credentials(value, f"lm `{lm.name}`", arg.name, sink):
                continue
            if not isinstance(value, ir.Literal) or not matches(value, options.get(arg.name, object)):
                continue
            if arg.name in SECRET_OPTIONS:
                sink.add("secret-in-source", f"`{arg.name}` of lm `{lm.name}` is written in the file", value.span,
                         "a key in the source", f'read it from the environment: `{arg.name}: env("NAME")`')
                continue
            if arg.name == "temperature" and not 0 <= value.value <= 2:
                sink.add("invalid-value", "temperature must be between 0 and 2", value.span)
            elif arg.name == "max_retries" and value.value < 0:
                sink.add("invalid-value", "`max_retries` cannot be negative", value.span)
            elif arg.name not in ("temperature", "seed", "max_retries") and isinstance(value.value, (int, float)) \
                    and value.value <= 0:
                sink.add("invalid-value", f"`{arg.name}` must be greater than 0", value.span)


def check_embeddings(module: ir.Module, sink: Sink) -> None:
    for emb in module.of(ir.Embedding):
        provider, _ = split_target(emb.target.value)
        if provider not in EMBEDDERS:
            sink.add("unknown-provider", f"no embedding models for provider `{provider or emb.target.value}`",
                     emb.target.span, "not an embedding provider", did_you_mean(provider, EMBEDDERS)
                     or "write `provider/model`, with provider one of: " + ", ".join(EMBEDDERS))
            continue
        options = embedding_options(provider)
        _check_args(emb.options, Signature(options), f"embedding `{emb.name}` ({provider})", sink)
        for arg in emb.options:
            if arg.name in SECRET_OPTIONS and isinstance(arg.value, ir.Literal):
                sink.add("secret-in-source", f"`{arg.name}` of embedding `{emb.name}` is written in the file",
                         arg.value.span, "a key in the source",
                         f'read it from the environment: `{arg.name}: env("NAME")`')
            else:
                _url_credentials(arg.value, f"embedding `{emb.name}`", arg.name, sink)


def _item_steps(item: ir.Step | ir.Branch) -> tuple[ir.Step, ...]:
    """The LM steps of one program statement: a step, or a branch's arms."""
    return tuple(arm.step for arm in item.arms) if isinstance(item, ir.Branch) else (item,)


def _produces(item: ir.Step | ir.Branch) -> str | None:
    """The model a step or branch yields (a branch: its first arm's)."""
    if isinstance(item, ir.Branch):
        return item.arms[0].step.model.name if item.arms else None
    return item.model.name


def _values(program: ir.Program) -> dict[str, str | None]:
    """Name -> model name of every value a program defines: its input and its steps."""
    values = {inp.name: inp.model.name for inp in program.inputs}
    values.update((item.name, _produces(item)) for item in program.steps)
    return values


def _model_fields(name: str | None, models: Mapping[str, ir.Model]) -> dict[str, ir.Field]:
    model = models.get(name) if name else None
    return {f.name: f for f in model.fields} if model else {}


def check_programs(module: ir.Module, sink: Sink) -> None:
    models = _first(module.of(ir.Model))
    lms = _first(module.of(ir.LM))
    tools = _first(module.of(ir.Tool))
    for program in module.of(ir.Program):
        for part, items in (("input", program.inputs), ("output", program.outputs)):
            if len(items) != 1:
                span = items[1].span if items else program.span
                sink.add("program-shape", f"program `{program.name}` must have exactly one {part} statement, "
                         f"found {len(items)}", span, help=f"write `{part} ...` once in the program")
        values = _values(program)
        for inp in program.inputs:
            _resolve_model(inp.model, models, sink)
        for item in program.steps:
            if isinstance(item, ir.Branch):
                _check_branch(item, values, models, sink)
            for step in _item_steps(item):
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
        for name in _model_fields(values.get(ref.name), models):
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
    fields = _model_fields(step.model.name, models)
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
        fields = _model_fields(values[on.name], models)
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


def _dependencies(item: ir.Step | ir.Branch) -> set[str]:
    if isinstance(item, ir.Branch):
        return {item.on.name} | {r.name for arm in item.arms for r in arm.step.sources}
    return {r.name for r in item.sources}


def _check_cycles(program: ir.Program, sink: Sink) -> None:
    """Steps may come in any order, but no step may depend on itself."""
    deps = {item.name: _dependencies(item) for item in program.steps}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    reported: set[str] = set()
    spans = {item.name: item.span for item in program.steps}

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in sorted(deps.get(name, ())):
            if dep not in deps:
                continue
            if state.get(dep) == 1 and dep not in reported:
                cycle = path[path.index(dep):] + [dep]
                reported.update(cycle)
                sink.add("cycle", f"step `{dep}` depends on itself: {' -> '.join(cycle)}", spans[dep],
                         "part of a cycle", "a step can read the input and other steps, but not through itself")
            elif dep not in state:
                visit(dep, path + [dep])
        state[name] = 2

    for name in deps:
        if name not in state:
            visit(name, [name])


TOOL_FORM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


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
        elif not TOOL_FORM.match(args[0].value):
            sink.add("invalid-value", f"{args[0].value!r} is not of the form \"module:function\"", args[0].span,
                     "not module:function", 'for example "icldsl.tools:calculator"')


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
        before = len(sink.errors)
        _check_args(call.args, signature, f"loader `{call.func}`", sink, call_span=call.span)
        if len(sink.errors) == before:  # values of the right types: do they work together?
            bound = bind(signature, call.args)
            values = {name: to_python(v) for name, v in bound.items() if isinstance(v, ir.Literal)}
            for option, message in loader.problems(values):
                sink.add("invalid-value", f"loader `{call.func}`: {message}", bound[option].span, "cannot work")


def check_trains(module: ir.Module, sink: Sink) -> None:
    programs = _first(module.of(ir.Program))
    datas = _first(module.of(ir.Data))
    models = _first(module.of(ir.Model))
    names = {"lm": _first(module.of(ir.LM)), "embedding": _first(module.of(ir.Embedding))}
    for train in module.of(ir.Train):
        program = programs.get(train.program.name)
        if program is None:
            sink.add("undefined-name", f"unknown program `{train.program.name}`", train.program.span,
                     "no program of this name", did_you_mean(train.program.name, programs))
        if train.data.name not in datas:
            sink.add("undefined-name", f"unknown data `{train.data.name}`", train.data.span, "no data of this name",
                     did_you_mean(train.data.name, datas) or f"define `data {train.data.name} = gsm8k()`")
        output = _output_model(program, models) if program else None
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
        for key in ("reward", "optimizer"):
            if key not in seen:
                sink.add("missing-setting", f"the train block has no `{key}`", train.span, f"no {key}",
                         "add for example `reward exact_match()`" if key == "reward"
                         else "add for example `optimizer random_few_shot()`")


def _check_runs(setting: ir.Setting, program: ir.Program, lms: Mapping[str, ir.LM], sink: Sink) -> None:
    """`runs N` repeats the test evaluation to measure sampling; at temperature 0 every run
    would get the same answers, so its spread would be 0 by construction."""
    if not (isinstance(setting.value, ir.Literal) and isinstance(setting.value.value, int) and setting.value.value > 1):
        return
    only = next(iter(lms)) if len(lms) == 1 else None
    used = {step.lm.name if step.lm else only for step in program.lm_steps()}
    if not used or not all(name in lms for name in used):
        return
    temperatures = [next((a.value for a in lms[name].options if a.name == "temperature"), None) for name in used]
    if all(isinstance(t, ir.Literal) and t.value == 0 for t in temperatures):
        sink.add("invalid-value", f"`runs {setting.value.value}` would repeat one evaluation: every LM of program "
                 f"`{program.name}` has temperature 0, so each run gets the same answers", setting.value.span,
                 "identical runs", "give the LM a temperature above 0 (each run then samples with its own seed), "
                 "or remove `runs`")


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


def _output_model(program: ir.Program, models: Mapping[str, ir.Model]) -> ir.Model | None:
    """The model the program outputs (its outputs' fields merged), or None when unresolvable."""
    if len(program.outputs) != 1:
        return None
    values = _values(program)
    refs = program.outputs[0].refs
    fields = [f for ref in refs for f in _model_fields(values.get(ref.name), models).values()]
    if not all(values.get(ref.name) in models for ref in refs):
        return None
    return ir.Model(" + ".join(str(values[r.name]) for r in refs), tuple(fields), program.span)


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
            signature = registry[value.func].signature
            _check_args(value.args, signature, f"{setting.key} `{value.func}`", sink,
                        output=output, call_span=value.span, models=models)
            _check_references(value, signature, names, sink)
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
        expected = TRAIN_SETTINGS[setting.key].type
        if not matches(value, expected) or not isinstance(value, (ir.Literal, ir.MapValue)):
            sink.add("wrong-type", f"`{setting.key}` must be {type_name(expected)}", value.span, "wrong type",
                     expected_found(value, expected))
        elif setting.key == "budget":
            for item in value.items:
                if item.name not in BUDGET_KEYS:
                    sink.add("unknown-option", f"a budget has no `{item.name}`", item.span, "unknown limit",
                             did_you_mean(item.name, BUDGET_KEYS) or "limit `calls`, `tokens` or both")
                elif item.value.value < 1:
                    sink.add("invalid-value", f"the `{item.name}` budget must be at least 1", item.value.span)
        elif setting.key == "validation_split" and not 0 < value.value < 1:
            sink.add("invalid-value", "`validation_split` must be between 0 and 1 (exclusive)", value.span)
        elif setting.key != "seed" and expected is int and value.value < 1:
            sink.add("invalid-value", f"`{setting.key}` must be at least 1", value.span)
        elif setting.key == "concurrency" and value.value > MAX_CONCURRENCY:
            sink.add("invalid-value", f"`concurrency` must be at most {MAX_CONCURRENCY}", value.span, "too many",
                     "rows in flight at once; more would exhaust connections and memory before a server answers")


def _check_references(call: ir.Call, signature: Signature, names: Mapping[str, Mapping[str, object]],
                      sink: Sink) -> None:
    """Options naming an `lm` or an `embedding` name one the file defines."""
    kinds = {name: kind for name, t in signature.options.items()
             for kind, marker in (("lm", LM_NAME), ("embedding", EMBEDDING_NAME)) if names_a(t, marker)}
    for arg in call.args:
        kind = kinds.get(arg.name or "")
        if kind and isinstance(arg.value, ir.Ref) and arg.value.name not in names[kind]:
            sink.add("undefined-name", f"unknown {kind} `{arg.value.name}`", arg.value.span, f"no {kind} of this name",
                     did_you_mean(arg.value.name, names[kind]) or f'define `{kind} {arg.value.name} = "provider/model"`')


def _referenced(module: ir.Module, marker: object) -> set[str]:
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


def check_unused(module: ir.Module, sink: Sink) -> None:
    """Warn of what nothing uses; a name an error already suggested (`using smal` -> did you mean
    `small`?) counts as used: the typo is the one mistake, said once."""
    typos = {d.fix.new for d in sink.diagnostics if d.code == "undefined-name" and d.fix is not None and d.fix.old}
    used: set[str] = set(typos)
    for model in module.of(ir.Model):
        used.update(n for f in model.fields for n in _names(f.type))
    lms_used, tools_used, embeddings_used = set(typos), set(typos), set(typos)
    lms = _first(module.of(ir.LM))
    for program in module.of(ir.Program):
        used.update(i.model.name for i in program.inputs)
        for step in program.lm_steps():
            used.add(step.model.name)
            tools_used.update(t.name for t in step.tools)
            if step.lm is not None:
                lms_used.add(step.lm.name)
            else:  # the only LM, or an ambiguity already reported as an error
                lms_used.update(lms)
        read = {name for item in program.steps for name in _dependencies(item)}
        read.update(r.name for out in program.outputs for r in out.refs)
        for item in program.steps:
            if item.name not in read:
                sink.add("unused-name", f"step `{item.name}` is computed but never used", item.span, "unused",
                         "use it in a later step or the output, or remove it")
    for model in module.of(ir.Model):
        if model.name not in used:
            sink.add("unused-name", f"model `{model.name}` is never used", model.span, "unused",
                     "remove it, or use it in a program")
    lms_used.update(str(a.value) for lm in lms.values() for a in lm.options
                    if a.name == "fallback" and matches(a.value, LM_NAME))
    lms_used.update(_referenced(module, LM_NAME))
    embeddings_used.update(_referenced(module, EMBEDDING_NAME))
    for emb in module.of(ir.Embedding):
        if emb.name not in embeddings_used:
            sink.add("unused-name", f"embedding `{emb.name}` is never used", emb.span, "unused",
                     "remove it, or name it in a reward or optimizer (`embedding: " + emb.name + "`)")
    for lm in lms.values():
        if lm.name not in lms_used:
            sink.add("unused-name", f"lm `{lm.name}` is never used", lm.span, "unused",
                     f"remove it, or add `using {lm.name}` to a step")
    for tool in module.of(ir.Tool):
        if tool.name not in tools_used:
            sink.add("unused-name", f"tool `{tool.name}` is never used", tool.span, "unused",
                     f"remove it, or add it to an agent step's `tools [...]`")


CHECKS = (check_duplicates, check_models, check_lms, check_embeddings, check_tools, check_programs, check_data, check_trains,
          check_unused)


def check(module: ir.Module) -> list:
    """Run every pass; raise CheckError if any error was found, else return the warnings."""
    sink = Sink()
    for check_pass in CHECKS:
        check_pass(module, sink)
    if sink.errors:
        raise CheckError(sink.diagnostics)
    return sink.diagnostics
