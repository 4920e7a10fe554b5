"""The `agent` step: the LM calls tools in a loop, then answers.

Each turn the LM writes `{"thinking": ..., "action": ...}` where the action is
either a call `{"tool": name, "arguments": {...}}` or `{"tool": "finish",
"output": <the step's model>}` (`request.turn_model`). A tool's result comes back
as the next user message. After `max_steps` turns without finishing, one last turn
must answer.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

from pydantic import BaseModel

from ..lm import Meter
from ..lm.base import Message, Usage
from ..language.specs import StepSpec
from .generate import answer
from .models import json_schema
from .request import FINISH, StepRequest
from .tools import Tool


async def run_agent(step: StepSpec, first: StepRequest, output_model: type[BaseModel], meter: Meter,
                    tools: Mapping[str, Tool]) -> tuple[dict, Usage]:
    """Turns from `first` (`request.step_request`'s) until the LM finishes; the answer and the usage spent."""
    request, usage = first.request, Usage()
    for _ in range(step.max_steps):
        parsed, text, usage = await answer(meter, request, first.reads, first.reads_name, usage)
        action = parsed["action"]
        if action["tool"] == FINISH:
            return action["output"], usage
        result = await tools[action["tool"]].call(action["arguments"])
        request = dataclasses.replace(request, messages=(
            *request.messages, Message("assistant", text), Message("user", f"Result of {action['tool']}: {result}")))
    final = dataclasses.replace(
        request, messages=(*request.messages, Message("user", "No more tool calls: give the final answer now.")),
        schema=json_schema(output_model), schema_name=step.model)
    parsed, _, usage = await answer(meter, final, output_model, step.model, usage)
    return parsed, usage
