"""The request a step sends: the one place that builds it.

`request` makes an LMRequest of a state (instructions and examples), the JSON schema the
answer must follow and the input: the messages (`prompt.render`), the schema, its name
and the LM's decoding options. `step_request` says which schema a step's first request
carries and what each answer is read into: the step's answer model, or for an agent one
turn (think, then call a tool or finish), with its examples shown as finishing turns.
`Program.run` sends these requests; `render` and `plan` show and count them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, Mapping, Sequence, Union

from pydantic import BaseModel, Field, create_model

from ..lm import LMRequest, decoding_options
from ..language.specs import LMSpec, StepSpec
from . import prompt
from .bounds import bounded_schema
from .models import IclModel
from .state import Demo, StepState
from .tools import Tool

FINISH = "finish"


def request(state: StepState, schema: Mapping[str, Any], schema_name: str, inputs: Mapping[str, Any],
            lm: LMSpec) -> LMRequest:
    return LMRequest(prompt.render(state, schema, inputs), schema, schema_name, **decoding_options(lm))


@dataclass(frozen=True, slots=True)
class StepRequest:
    """A step's first request, and the model (with the name errors call it) each answer is read into."""

    request: LMRequest
    reads: type[BaseModel]
    reads_name: str


def step_request(step: StepSpec, state: StepState, inputs: Mapping[str, Any], answer: type[BaseModel],
                 lm: LMSpec, tools: Mapping[str, Tool], retrieved: Sequence[Demo] = ()) -> StepRequest:
    """The first request of `step` with `state` (retrieved examples already among its
    examples) for `inputs`; `answer` is the model of the step's answer, `tools` the
    program's (read by an agent step only). `retrieved` are the examples retrieved for
    `inputs`: with the state's retrieval `labels: "retrieved"`, each enum field of the
    schema offers only their labels; with its `vote_weight`, the request's choices are their
    outputs (`runtime.retrieval`)."""
    if step.kind == "agent":
        turn = turn_model(answer, tools)
        schema = turn.model_json_schema(by_alias=True)  # a new turn model each run: not cached
        return StepRequest(request(as_finish(state), schema, "agent_turn", inputs, lm), turn, "agent turn")
    schema = bounded_schema(answer, state.bounds)  # the bounds a fit took from the data, as maxLength
    if state.retrieval is not None and state.retrieval.labels == "retrieved" and retrieved:
        schema = only_labels(schema, retrieved)
    sent = request(state, schema, step.answer_model, inputs, lm)
    choices = state.retrieval.choices(
        retrieved, [f.alias or n for n, f in answer.model_fields.items()]) if state.retrieval else ()
    if choices:
        sent = replace(sent, choices=choices)
    return StepRequest(sent, answer, step.answer_model)


# (id(schema), labels per field) -> (schema, its restriction): one object per label set, so the
# prompt's schema text is worked out once for it (`prompt.schema_text`); the base schema is kept
# so its id stays its own.
_RESTRICTED: dict[tuple[int, tuple], tuple[Mapping[str, Any], dict[str, Any]]] = {}
_MAX_RESTRICTED = 4096


def only_labels(schema: Mapping[str, Any], retrieved: Sequence[Demo]) -> Mapping[str, Any]:
    """`schema` whose top-level enum fields offer only the labels `retrieved` carry, in the
    declared order; a field none of them carries keeps its labels."""
    fields = {}
    for name, node in schema.get("properties", {}).items():
        labels = _enum(node)
        if labels is not None:
            shown = {d.output.get(name) for d in retrieved}
            kept = tuple(label for label in labels if label in shown)
            if kept and len(kept) < len(labels):
                fields[name] = kept
    if not fields:
        return schema
    key = (id(schema), tuple(sorted(fields.items())))
    entry = _RESTRICTED.get(key)
    if entry is None or entry[0] is not schema:
        if len(_RESTRICTED) >= _MAX_RESTRICTED:
            _RESTRICTED.clear()
        properties = {name: _with_enum(node, fields[name]) if name in fields else node
                      for name, node in schema["properties"].items()}
        entry = _RESTRICTED[key] = (schema, {**schema, "properties": properties})
    return entry[1]


def _enum(node: Mapping[str, Any]) -> list | None:
    """The labels of an enum node, or of the enum in an optional's `anyOf`; None for other nodes."""
    if isinstance(node.get("enum"), list):
        return node["enum"]
    for option in node.get("anyOf", ()):
        if isinstance(option, dict) and isinstance(option.get("enum"), list):
            return option["enum"]
    return None


def _with_enum(node: Mapping[str, Any], labels: tuple) -> dict[str, Any]:
    if "enum" in node:
        return {**node, "enum": list(labels)}
    return {**node, "anyOf": [{**o, "enum": list(labels)} if isinstance(o, dict) and "enum" in o else o
                              for o in node["anyOf"]]}


def turn_model(output: type[BaseModel], tools: Mapping[str, Tool]) -> type[BaseModel]:
    """The model of one agent turn: think, then call a tool or finish."""
    actions: list[type[BaseModel]] = [
        create_model(f"call_{name}", __base__=IclModel, tool=(Literal[name], ...),
                     arguments=(tool.arguments, Field(description=tool.description or None)))
        for name, tool in tools.items()
    ]
    actions.append(create_model("finish", __base__=IclModel, tool=(Literal[FINISH], ...), output=(output, ...)))
    action = Union[tuple(actions)] if len(actions) > 1 else actions[0]
    return create_model(
        "agent_turn", __base__=IclModel,
        thinking=(str, Field(description="What you know so far and what to do next")),
        action=(action, Field(discriminator="tool") if len(actions) > 1 else Field()),
    )


def finishing(output: Mapping[str, Any]) -> dict[str, Any]:
    """An answer of the step's model as the agent's finishing turn."""
    return {"thinking": "", "action": {"tool": FINISH, "output": dict(output)}}


def as_finish(state: StepState) -> StepState:
    """Few-shot examples shown as finishing turns, the shape the agent answers in."""
    return state.with_examples(tuple(Demo(d.inputs, finishing(d.output), d.reward, d.origin) for d in state.examples))
