"""Length bounds of the free strings in a step's answer: where each comes from, in one place.

A string field with a declared `max_length` keeps it. Otherwise a fit bounds it by the
data: the longest value of that field among the training outputs, plus half as much again,
at least MIN_BOUND characters (`from_data`); the bound is part of the step's state, so the
artifact keeps it and a loaded program decodes as the scored one. `bounded_schema` puts
the bounds in the answer's JSON schema as `maxLength`, so the schema in the prompt shows
them and a local model's grammar holds to them. A string still unbounded gets, from the
local client alone, an equal share of `max_tokens` (`lm.local.schema.bound_strings`).

`describe` says which bound applies to each top-level string field of a step's answer and
why; `tokens_needed` what the bounded answer may take, which `plan` and `fit` hold against
the LM's `max_tokens`.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from pydantic import BaseModel

from ..lm.local.schema import bound_strings, needed_tokens
from ..lm.providers import split_target
from ..specs import LMSpec
from .models import json_schema

MIN_BOUND = 16  # characters: a data bound is never below this
MARGIN = 0.5  # a data bound is the longest training value plus this share of it

Bounds = tuple[tuple[str, int], ...]  # (field, characters), in the answer's field order


def _free(node: Mapping[str, Any]) -> bool:
    return node.get("type") == "string" and not {"maxLength", "enum", "const", "format", "pattern"} & set(node)


def _string_nodes(prop: Mapping[str, Any]) -> list[dict]:
    """The string schemas of a property: itself, or the branches of an optional (`anyOf`)."""
    nodes = [prop, *prop.get("anyOf", ())]
    return [n for n in nodes if isinstance(n, dict) and n.get("type") == "string"]


def free_fields(model: type[BaseModel]) -> list[str]:
    """The top-level fields of `model` (declared names) that are strings with no bound of their own."""
    properties = json_schema(model).get("properties", {})
    return [name for name, prop in properties.items()
            if (nodes := _string_nodes(prop)) and all(_free(n) for n in nodes)]


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
            if _free(node):
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
        nodes = [n for n in _string_nodes(prop) if not {"enum", "const", "format", "pattern"} & set(n)]
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


def shortfall(model: type[BaseModel], bounds: Bounds, lm: LMSpec) -> str | None:
    """A warning when `lm` is local and its `max_tokens` cannot hold the bounded answer (the
    grammar then cannot close the object in time), with the fix; else None."""
    max_tokens = lm.options.get("max_tokens")
    needed = tokens_needed(model, bounds)
    if not is_local(lm) or not max_tokens or needed is None or needed <= max_tokens:
        return None
    fields = ", ".join(f"{name} {limit}" for name, limit in bounds)
    return (f"the answer may need {needed} tokens with its string bounds ({fields} characters), more than "
            f"lm `{lm.name}`'s max_tokens {max_tokens}: a long answer is cut and fails; raise max_tokens to "
            f"{needed}, or set a smaller `max_length` on the fields")


def from_training(program: Any, outputs: Sequence[Mapping[str, Any]]) -> dict[str, Bounds]:
    """The data bounds of every LM step (not an agent) whose answer has a free string field
    that the expected `outputs` hold, by step path."""
    found = {}
    for step in program.spec.lm_steps():
        if step.kind == "agent":
            continue
        bounds = from_data(program.models[step.answer_model], outputs)
        if bounds:
            found[step.path] = bounds
    return found


def shortfalls(program: Any) -> list[str]:
    """`shortfall` of every LM step of `program` (not an agent) with its current bounds."""
    lms = {lm.name: lm for lm in program.spec.lms}
    found = []
    for step in program.spec.lm_steps():
        if step.kind != "agent":
            problem = shortfall(program.models[step.answer_model], program.states[step.path].bounds, lms[step.lm])
            if problem:
                found.append(f"step {step.path}: {problem}")
    return found
