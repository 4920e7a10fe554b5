"""JSON schemas rewritten for the grammar that constrains a local model's answer."""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..base import LMConfigError

_ANNOTATIONS = ("title", "description", "default", "examples")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not")


# What bounds a string schema already has: one with none of these is free, its length the
# grammar's to cap (here) or the data's (runtime/bounds.py).
STRING_LIMITS = frozenset({"maxLength", "enum", "const", "format", "pattern"})


def is_free_string(node: Mapping[str, Any]) -> bool:
    """Whether `node` is a string schema with nothing that bounds its length."""
    return node.get("type") == "string" and not STRING_LIMITS & set(node)


def grammar_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` in the shape llama-cpp-python's grammar converter accepts.

    The converter rejects a node with only annotations (pydantic's `Any` is
    `{"title": ...}`) and cannot resolve `$ref`s inside `$defs` when the root
    itself is a `$ref` (pydantic's shape for recursive models). So annotations
    are dropped, and a root `$ref` is replaced by its target.
    """

    def strip(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = {k: v for k, v in node.items() if k not in _ANNOTATIONS}
        for key in _SCHEMA_MAPS:
            if isinstance(out.get(key), dict):
                out[key] = {name: strip(sub) for name, sub in out[key].items()}
        for key in _SCHEMA_LISTS:
            if isinstance(out.get(key), list):
                out[key] = [strip(sub) for sub in out[key]]
        for key in _SCHEMA_VALUES:
            if isinstance(out.get(key), dict):
                out[key] = strip(out[key])
        return out

    root = strip(dict(schema))
    ref = root.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        del root["$ref"]
        target: Any = root
        for part in ref[2:].split("/"):
            if not isinstance(target, dict) or part not in target:
                raise LMConfigError(f"JSON schema $ref {ref!r} points nowhere")
            target = target[part]
        root = {**root, **target}
    return root


# A constrained answer must end as a whole object within max_tokens, or it does
# not parse. Strings without a maxLength share what the budget leaves after the
# object's punctuation and the longest text its other values may take, at one
# character per token: a token is at least one character, so the bound holds
# for any text.
RESERVED_TOKENS = 16  # braces, keys, quotes, commas
MIN_SHARE = 8  # characters: a share is never smaller, even past max_tokens
# The longest value llama.cpp's JSON grammar admits: 16 integral digits, 16
# decimals and an exponent of 16 digits for a number; 16 digits for an integer.
VALUE_TOKENS = {"number": 52, "integer": 18, "boolean": 5, "null": 4}


def _value_tokens(node: Mapping[str, Any]) -> int:
    labels = node.get("enum") or ([node["const"]] if "const" in node else None)
    if labels is not None:
        return max(len(json.dumps(label)) for label in labels)
    if node.get("type") == "string":
        return node.get("maxLength", 0) + 2
    return VALUE_TOKENS.get(node.get("type"), 0)


def _walk(schema: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict], int]:
    """A copy of `schema`, its free strings (no length bound of their own) in that copy, and
    the tokens its other values and punctuation may take."""
    free: list[dict] = []
    reserved = RESERVED_TOKENS

    def walk(node: Any) -> Any:
        nonlocal reserved
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        if is_free_string(out):
            free.append(out)
        else:
            reserved += _value_tokens(out)
        return out

    return walk(dict(schema)), free, reserved


def bound_strings(schema: Mapping[str, Any], max_tokens: int) -> dict[str, Any]:
    """`schema` with a `maxLength` on every free string, sharing the token budget."""
    bounded, free, reserved = _walk(schema)
    if free:
        share = max(MIN_SHARE, (max_tokens - reserved) // len(free))
        for node in free:
            node["maxLength"] = share
    return bounded


def needed_tokens(schema: Mapping[str, Any]) -> int | None:
    """At most how many tokens an answer to `schema` takes (every value at its longest, a token
    per character), or None when a string has no bound."""
    _, free, reserved = _walk(schema)
    return None if free else reserved
