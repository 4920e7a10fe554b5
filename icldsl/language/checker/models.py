"""Rules for `model` blocks: field types, their constraints, and models that contain
themselves."""

from __future__ import annotations

from collections import Counter
from typing import Mapping

from .. import ir
from ..diagnostics import Sink, did_you_mean
from ..parser import MAX_DEPTH
from ..options import Signature, matches
from ..spec_check import constraint_problems
from ..vocabulary import CONSTRAINTS, PRIMITIVE_TYPES
from .common import check_args, first, type_names


def check_models(module: ir.Module, sink: Sink) -> None:
    models = first(module.of(ir.Model))
    known = (*PRIMITIVE_TYPES, *models)

    for model in models.values():
        for f in model.fields:
            for t in ir.type_parts(f.type):
                if isinstance(t, ir.NamedType) and t.name not in known:
                    sink.add("undefined-name", f"unknown type `{t.name}`", t.span, "not a builtin type or a model",
                             did_you_mean(t.name, known) or f"define `model {t.name} {{ ... }}` or use one of "
                             + ", ".join(PRIMITIVE_TYPES))
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
    what = f"type `{kind}`" if kind in CONSTRAINTS or kind in PRIMITIVE_TYPES else f"model `{kind}`"
    if not allowed:
        sink.add("unknown-option", f"{what} takes no constraints", t.constraints[0].span, "not allowed here",
                 "constraints apply to int, float, str and list")
        return
    check_args(t.constraints, Signature(allowed), what, sink)
    written: dict[str, ir.Literal] = {}
    for a in t.constraints:  # each as first given: check_args reports a repeated one
        if isinstance(a.value, ir.Literal) and a.name in allowed and matches(a.value, allowed[a.name]):
            written.setdefault(a.name, a.value)
    for problem in constraint_problems({name: value.value for name, value in written.items()}):
        span = written[problem.option].span if problem.option else t.span
        sink.add("invalid-value", problem.message, span, problem.label, problem.help)


def _check_model_cycles(models: Mapping[str, ir.Model], sink: Sink) -> None:
    """A model may contain itself only through a list (a tree), never directly; and no chain
    of models nests deeper than MAX_DEPTH. Linear in the models' fields, without recursion,
    so thousands of models cost milliseconds."""
    order = {name: i for i, name in enumerate(models)}
    direct = {m.name: sorted({n for f in m.fields for n in type_names(f.type, through_lists=False) if n in models})
              for m in models.values()}
    for component in _components(direct):
        first = min(component, key=order.__getitem__)
        if len(component) > 1 or first in direct[first]:
            cycle = " -> ".join(_cycle(first, direct, set(component)))
            sink.add("invalid-value", f"model `{first}` contains itself: {cycle}", models[first].span,
                     "recursive model", "a model can contain itself only through a list, as in "
                     "`children: list[Node]`")
    nested = {m.name: sorted({n for f in m.fields for n in type_names(f.type) if n in models}) for m in models.values()}
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
