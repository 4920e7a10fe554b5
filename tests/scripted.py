"""A scripted in-process LM for optimizer and trainer logic (no HTTP involved)."""

from __future__ import annotations

import asyncio
import json
from typing import Callable

from icldsl.lm.base import LMError, LMRequest, LMResponse, Usage


class ScriptedLM:
    """Answers with `answer(request)`: a dict (sent as JSON), a str (sent as is),
    or an LMError (raised). `delay(request)` seconds pass first, so calls can be
    made to finish out of order. Every request is recorded."""

    name = "scripted/test"

    def __init__(self, answer: Callable[[LMRequest], object], delay: Callable[[LMRequest], float] | None = None):
        self.answer = answer
        self.delay = delay
        self.requests: list[LMRequest] = []
        self.closed = False

    async def complete(self, request: LMRequest) -> LMResponse:
        self.requests.append(request)
        if self.delay:
            await asyncio.sleep(self.delay(request))
        result = self.answer(request)
        if isinstance(result, LMError):
            raise result
        text = result if isinstance(result, str) else json.dumps(result)
        return LMResponse(text, Usage(prompt_tokens=10, completion_tokens=5))

    async def aclose(self) -> None:
        self.closed = True


def last_input(request: LMRequest) -> dict:
    """The input object the step sent (its last user message)."""
    # After a refused answer the runtime adds a turn showing the error; the input is before it.
    for message in reversed(request.messages):
        if message.role == "user" and message.content.startswith("{"):
            return json.loads(message.content)
    raise AssertionError("no input object among the request's messages")
