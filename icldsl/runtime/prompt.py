"""The messages an LM step sends, rendered with jinja2.

System message: the step's instructions and the output's JSON schema (with
every field's description). Then each few-shot example as a user turn holding
its input and an assistant turn holding its output, both as JSON. Last, the
input as JSON.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import jinja2

from ..lm.base import Message
from .state import StepState

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)

SYSTEM = _ENV.from_string(
    """{{ instructions }}

The input is a JSON object. Answer with one JSON object, and nothing else, that follows this JSON schema:
{{ schema }}"""
)
USER = _ENV.from_string("{{ input }}")

DEFAULT_INSTRUCTIONS = "Read the input and write the output fields as the schema describes them."


def to_json(value: Mapping[str, Any]) -> str:
    """Compact, key-ordered JSON as the prompt shows it."""
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


def prompt_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema without pydantic's `title` keys, which only add noise to a prompt."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(dict(schema))


def render(state: StepState, schema: Mapping[str, Any], inputs: Mapping[str, Any]) -> tuple[Message, ...]:
    messages = [Message("system", SYSTEM.render(instructions=state.instructions,
                                                schema=to_json(prompt_schema(schema))))]
    for demo in state.examples:
        messages.append(Message("user", USER.render(input=to_json(demo.inputs))))
        messages.append(Message("assistant", to_json(demo.output)))
    messages.append(Message("user", USER.render(input=to_json(inputs))))
    return tuple(messages)

