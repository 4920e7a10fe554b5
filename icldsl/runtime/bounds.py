"""Length bounds of the free strings in a step's answer: where each comes from, in one place.

A string field with a declared `max_length` keeps it. Otherwise a fit bounds it by the
data: the longest value of that field among the training outputs, plus half as much again,
at least MIN_BOUND characters (`from_data`). For a local LM with `max_tokens` the bounds
must also fit the budget its grammar guarantees (a token is at least one character, see
`lm.local.schema`): when they do not, the budget is shared out so that a field needing less
than an equal share keeps its data bound and the others split the rest equally (`fitted`),
and `fit` and `plan` warn with the numbers and the `max_tokens` that would hold them all.
The bounds are part of the step's state, so the artifact keeps them and a loaded program
decodes as the scored one. `bounded_schema` puts them in the answer's JSON schema as
`maxLength`, so the schema in the prompt shows them and a local model's grammar holds to
them. A string still unbounded (a field the data does not hold) gets, from the local client
alone, an equal share of what `max_tokens` leaves (`lm.local.schema.bound_strings`).

`describe` says which bound applies to each top-level string field of a step's answer and
why.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from pydantic import BaseModel

from ..lm.local.schema import MIN_SHARE, STRING_LIMITS, bound_strings, is_free_string, needed_tokens
from ..lm.providers import split_target
from ..language.specs import LMSpec
from .models import json_schema

MIN_BOUND = 16  # characters: a data bound is never below this
MARGIN = 0.5  # a data bound is the longest training value plus this share of it

Bounds = tuple[tuple[str, int], ...]  # (field, characters), in the answer's field order


def _string_nodes(prop: Mapping[str, Any]) -> list[dict]:
    """The string schemas of a property: itself, or the branches of an optional (`anyOf`)."""
    nodes = [prop, *prop.get("anyOf", ())]
    return [n for n in nodes if isinstance(n, dict) and n.get("type") == "string"]


def free_fields(model: type[BaseModel]) -> list[str]:
    """The top-level fields of `model` (declared names) that are strings with no bound of their own."""
    properties = json_schema(model).get("properties", {})
    return [name for name, prop in properties.items()
            if (nodes := _string_nodes(prop)) and all(is_free_string(n) for n in nodes)]


def from_data(model: type[BaseModel], outputs: Iterable[Mapping[str, Any]]) -> Bounds:
    """A bound for each free string field of `model` that the expected `outputs` hold:
    the longest value plus MARGIN of it, at least MIN_BOUND characters."""
    fields = free_fields(model)
    longest: dict[str, int] = {}
    for output in outputs:
        for name in fields:
            if name in output:
                value = output[name]
                longest[name] = max(longest.get(name, 0), len(value) if isinstance(value, str) else 0)
    return tuple((name, max(MIN_BOUND, math.ceil(longest[name] * (1 + MARGIN)))) for name in fields
                 if name in longest)


@functools.lru_cache(maxsize=256)
def bounded_schema(model: type[BaseModel], bounds: Bounds) -> dict[str, Any]:
    """The answer's JSON schema with `maxLength` on the strings of the bounded fields; the
    same object for the same arguments (the prompt renders a schema's text once per object)."""
    schema = json_schema(model)
    if not bounds:
        return schema
    schema = copy.deepcopy(schema)
    properties = schema.get("properties", {})
    for name, limit in bounds:
        for node in _string_nodes(properties.get(name, {})):
            if is_free_string(node):
                node["maxLength"] = limit
    return schema


@dataclass(frozen=True, slots=True)
class FieldBound:
    """The bound on one string field of a step's answer: characters (None: none) and its origin."""

    field: str
    limit: int | None
    origin: str  # "max_length", "training data", "a share of max_tokens N", "none"


def bounds_text(found: Sequence[FieldBound]) -> str:
    """The bounds as `render` and `plan` print them, fields of the same origin together:
    `city ≤ 36, state ≤ 21 characters (training data); note ≤ 40 characters (max_length)`."""
    groups: dict[str, list[FieldBound]] = {}
    for b in found:
        groups.setdefault(b.origin, []).append(b)
    return "; ".join(", ".join(f"{b.field}: no bound" if b.limit is None else f"{b.field} ≤ {b.limit}" for b in group)
                     + ("" if origin == "none" else f" characters ({origin})") for origin, group in groups.items())


def is_local(lm: LMSpec) -> bool:
    return split_target(lm.target)[0] == "local"


def describe(model: type[BaseModel], bounds: Bounds, lm: LMSpec) -> tuple[FieldBound, ...]:
    """The bound each top-level free or bounded string field of `model` gets in a request to
    `lm`: its `max_length`, its data bound, else (a local LM with max_tokens) its share."""
    given = dict(bounds)
    schema = bounded_schema(model, bounds)
    max_tokens = lm.options.get("max_tokens")
    shared = bound_strings(schema, max_tokens) if is_local(lm) and max_tokens else schema
    out = []
    for name, prop in schema.get("properties", {}).items():
        nodes = [n for n in _string_nodes(prop) if not (STRING_LIMITS - {"maxLength"}) & set(n)]
        if not nodes:
            continue
        if name in given:
            out.append(FieldBound(name, given[name], "training data"))
        elif "maxLength" in nodes[0]:
            out.append(FieldBound(name, nodes[0]["maxLength"], "max_length"))
        else:
            limit = next((n.get("maxLength") for n in _string_nodes(shared["properties"][name])), None)
            out.append(FieldBound(name, limit, f"a share of max_tokens {max_tokens}" if limit is not None else "none"))
    return tuple(out)


def tokens_needed(model: type[BaseModel], bounds: Bounds) -> int | None:
    """At most how many tokens the answer takes with these bounds (a token is at least one
    character); None when a string is still unbounded."""
    return needed_tokens(bounded_schema(model, bounds))


def fitted(model: type[BaseModel], wanted: Bounds, lm: LMSpec) -> Bounds:
    """`wanted` cut to what `lm`'s `max_tokens` holds, when `lm` is local and sets one: the
    characters left after the answer's other values and punctuation go first to the fields
    wanting less than an equal share, in full, and the rest in equal shares (at least
    MIN_SHARE characters, as the local client's own share). A free field the data does not
    hold wants an equal share of what is left."""
    max_tokens = lm.options.get("max_tokens")
    if not wanted or not is_local(lm) or not max_tokens:
        return wanted
    free = free_fields(model)
    left = max_tokens - needed_tokens(bounded_schema(model, tuple((name, 0) for name in free)))
    want = dict(wanted)
    given: dict[str, int] = {}
    queue = sorted(free, key=lambda name: want.get(name, math.inf))
    while queue:
        share = max(MIN_SHARE, left // len(queue))
        name = queue.pop(0)
        given[name] = min(want.get(name, share), share)
        left -= given[name]
    return tuple((name, given[name]) for name, _ in wanted)


def shortfall(model: type[BaseModel], wanted: Bounds, applied: Bounds, lm: LMSpec) -> str | None:
    """A warning when the data bounds had to be cut to fit `lm`'s `max_tokens`, with the fix."""
    cut = [(name, limit, dict(applied)[name]) for name, limit in wanted if dict(applied)[name] < limit]
    if not cut:
        return None
    needed = tokens_needed(model, wanted)
    fields = ", ".join(f"{name} {limit} -> {now}" for name, limit, now in cut)
    fix = f"raise max_tokens to {needed}" if needed is not None else "raise max_tokens"
    return (f"lm `{lm.name}`'s max_tokens {lm.options['max_tokens']} cannot hold the string bounds the training "
            f"data needs, so they are cut ({fields} characters) and answers as long as the data's cannot be "
            f"given; {fix}, or set a `max_length` on the fields")


def starved(step: str, found: Sequence[FieldBound]) -> str | None:
    """A warning when free strings get no more than the smallest share of max_tokens: what
    the other values leave is gone (the local grammar then cuts them at MIN_SHARE characters)."""
    names = [b.field for b in found if b.origin.startswith("a share") and b.limit is not None and b.limit <= MIN_SHARE]
    if not names:
        return None
    budget = next(b.origin for b in found if b.field == names[0]).removeprefix("a share of ")
    gets, them = ("gets", "it") if len(names) == 1 else ("get", "them")
    return (f"step {step}: {', '.join(names)} {gets} only {MIN_SHARE} characters: {budget} leaves {them} nothing after "
            "the answer's other values; raise max_tokens, or give a `max_length` (or training data that holds the "
            "field)")


@dataclass(frozen=True, slots=True)
class DataBounds:
    """What a fit takes from the data: each step's bounds (by path) and the warnings of the cut ones."""

    bounds: Mapping[str, Bounds]
    warnings: tuple[str, ...]


def from_training(program: Any, outputs: Sequence[Mapping[str, Any]]) -> DataBounds:
    """The data bounds of every LM step (not an agent) of `program` (a runtime `Program`, which
    imports this module) whose answer has a free string field that the expected `outputs`
    hold, fitted to its LM's `max_tokens`."""
    lms = {lm.name: lm for lm in program.spec.lms}
    found, warnings = {}, []
    for step in program.spec.lm_steps():
        if step.kind == "agent":
            continue
        model = program.models[step.answer_model]
        wanted = from_data(model, outputs)
        if wanted:
            found[step.path] = fitted(model, wanted, lms[step.lm])
            problem = shortfall(model, wanted, found[step.path], lms[step.lm])
            if problem:
                warnings.append(f"step {step.path}: {problem}")
    return DataBounds(found, tuple(warnings))
