"""The request a step sends: the one place that builds it.

`request` makes an LMRequest of a state (instructions and examples), the JSON schema the
answer must follow and the input: the messages (`prompt.render`), the schema, its name
and the LM's decoding options. `step_request` says which schema a step's first request
carries and what each answer is read into: the step's answer model, or for an agent one
turn (think, then call a tool or finish), with its examples shown as finishing turns.
`Program.run` sends these requests; `render` and `plan` show and count them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Mapping, Union

from pydantic import BaseModel, Field, create_model

from ..lm import LMRequest, decoding_options
from ..specs import LMSpec, StepSpec
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
                 lm: LMSpec, tools: Mapping[str, Tool]) -> StepRequest:
    """The first request of `step` with `state` (retrieved examples already among its
    examples) for `inputs`; `answer` is the model of the step's answer, `tools` the
    program's (read by an agent step only)."""
    if step.kind == "agent":
        turn = turn_model(answer, tools)
        schema = turn.model_json_schema(by_alias=True)  # a new turn model each run: not cached
        return StepRequest(request(as_finish(state), schema, "agent_turn", inputs, lm), turn, "agent turn")
    schema = bounded_schema(answer, state.bounds)  # the bounds a fit took from the data, as maxLength
    return StepRequest(request(state, schema, step.answer_model, inputs, lm), answer, step.answer_model)


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
