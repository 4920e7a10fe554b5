"""The messages an LM step sends (the system message rendered with jinja2).

System message: the step's instructions and the output's JSON schema (with
every field's description). Then each few-shot example as a user turn holding
its input and an assistant turn holding its output, both as JSON. Last, the
input as JSON.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, Any, Mapping

from ..lm.base import Message
from .state import StepState

if TYPE_CHECKING:
    import jinja2

SYSTEM = """{{ instructions }}

The input is a JSON object. Answer with one JSON object, and nothing else, that follows this JSON schema:
{{ schema }}"""


@functools.cache
def _system() -> jinja2.Template:
    """SYSTEM compiled; jinja2 is imported on the first render, so compiling a file does not load it."""
    import jinja2

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
    return environment.from_string(SYSTEM)


_ENCODER = json.JSONEncoder(ensure_ascii=False, sort_keys=False)  # one for every call: json.dumps makes one per call


def to_json(value: Mapping[str, Any]) -> str:
    """Compact, key-ordered JSON as the prompt shows it."""
    return _ENCODER.encode(value)


def prompt_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON schema without pydantic's `title` keys, which only add noise to a prompt."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(dict(schema))


# id(schema) -> (schema, its text): a step sends the same schema object with every request
# (`models.json_schema` builds it once per model); the object is kept so its id stays its own.
_SCHEMA_TEXTS: dict[int, tuple[Mapping[str, Any], str]] = {}
_MAX_SCHEMAS = 1024


def schema_text(schema: Mapping[str, Any]) -> str:
    """The schema as the system message shows it, worked out once per schema object:
    rendering the system message on every request cost a third of a call's own work."""
    entry = _SCHEMA_TEXTS.get(id(schema))
    if entry is None or entry[0] is not schema:
        if len(_SCHEMA_TEXTS) >= _MAX_SCHEMAS:
            _SCHEMA_TEXTS.clear()
        entry = _SCHEMA_TEXTS[id(schema)] = (schema, to_json(prompt_schema(schema)))
    return entry[1]


@functools.lru_cache(maxsize=_MAX_SCHEMAS)
def system_message(instructions: str, schema: str) -> str:
    return _system().render(instructions=instructions, schema=schema)


def render(state: StepState, schema: Mapping[str, Any], inputs: Mapping[str, Any]) -> tuple[Message, ...]:
    messages = [Message("system", system_message(state.instructions, schema_text(schema)))]
    for demo in state.examples:
        messages.append(Message("user", to_json(demo.inputs)))
        messages.append(Message("assistant", to_json(demo.output)))
    messages.append(Message("user", to_json(inputs)))
    return tuple(messages)

