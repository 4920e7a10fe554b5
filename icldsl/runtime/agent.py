"""The `agent` step: the LM calls tools in a loop, then answers.

Each turn the LM writes `{"thinking": ..., "action": ...}` where the action is
either a call `{"tool": name, "arguments": {...}}` or `{"tool": "finish",
"output": <the step's model>}`. A tool's result comes back as the next user
message. After `max_steps` turns without finishing, one last turn must answer.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping, Union

from pydantic import BaseModel, Field, create_model

from ..lm import LMClient, LMError, LMRequest
from ..lm.base import Message, Usage
from . import prompt
from .generate import StepFailure, decoding_options, validate_answer
from .models import IclModel, json_schema
from ..specs import LMSpec, StepSpec
from .state import Demo, StepState
from .tools import Tool

FINISH = "finish"


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


def _as_finish(state: StepState) -> StepState:
    """Few-shot examples shown as finishing turns, the shape the agent answers in."""
    demos = tuple(Demo(d.inputs, {"thinking": "", "action": {"tool": FINISH, "output": dict(d.output)}},
                       d.reward, d.origin) for d in state.examples)
    return state.with_examples(demos)


async def run_agent(
    step: StepSpec,
    output_model: type[BaseModel],
    state: StepState,
    inputs: Mapping[str, Any],
    lm: LMSpec,
    client: LMClient,
    tools: Mapping[str, Tool],
) -> tuple[dict, Usage]:
    turn = turn_model(output_model, tools)
    schema = turn.model_json_schema(by_alias=True)  # a new turn model each run: not cached
    messages = list(prompt.render(_as_finish(state), schema, inputs))
    usage = Usage()
    decoding = decoding_options(lm)
    for _ in range(step.max_steps):
        text, usage = await _ask(client, LMRequest(tuple(messages), schema, "agent_turn", **decoding), usage)
        parsed = validate_answer(turn, "agent turn", text, usage)
        action = parsed["action"]
        if action["tool"] == FINISH:
            return action["output"], usage
        result = await tools[action["tool"]].call(action["arguments"])
        messages += [Message("assistant", text), Message("user", f"Result of {action['tool']}: {result}")]
    messages.append(Message("user", "No more tool calls: give the final answer now."))
    final_schema = json_schema(output_model)
    text, usage = await _ask(client, LMRequest(tuple(messages), final_schema, step.model, **decoding), usage)
    return validate_answer(output_model, step.model, text, usage), usage


async def _ask(client: LMClient, request: LMRequest, usage: Usage) -> tuple[str, Usage]:
    try:
        response = await client.complete(request)
    except LMError as exc:
        raise StepFailure(f"LM call failed: {exc}", usage) from None
    total = Usage(usage.prompt_tokens + response.usage.prompt_tokens,
                  usage.completion_tokens + response.usage.completion_tokens)
    return response.text, total

