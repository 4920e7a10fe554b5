"""A client for Anthropic's messages API (`/v1/messages`).

Structured output goes through one tool whose `input_schema` is the JSON
schema, forced with `tool_choice`; the tool's input is the answer. System
messages become the top-level `system`; consecutive turns of one role are
joined, as the API wants turns to alternate. The key comes from the `api_key`
option (an `env(...)` in a file) or `$ANTHROPIC_API_KEY`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any, Sequence

import httpx

from icldsl.lm import http
from icldsl.language.catalogue.lms import PROVIDERS
from icldsl.lm.base import LMConfigError, LMError, LMRequest, LMResponse, Usage, refuse_choices
from icldsl.lm.openai import schema_name
from icldsl.lm.providers import declared_options

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
OFFICIAL_HOST = "api.anthropic.com"
API_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 1024  # the API requires max_tokens; used when the lm sets none


class AnthropicClient(http.HTTPClient):
    """`LMClient` for the messages API. `seed` is not sent: the API has none. The options'
    defaults and ranges are their declarations' (`icldsl.language.catalogue.lms`).

    `backoff_base`, `transport`, `sleep` and `clock` are for tests.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | Sequence[str] | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        max_retries: int | None = None,
        max_concurrency: int | None = None,
        rpm: int | None = None,
        total_timeout: float | None = None,
        backoff_base: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: http.Sleep = asyncio.sleep,
        clock: http.Clock = time.monotonic,
    ) -> None:
        options = declared_options("anthropic", PROVIDERS["anthropic"].client_options, {
            "base_url": base_url, "api_key": api_key, "timeout": timeout, "max_retries": max_retries,
            "max_concurrency": max_concurrency, "rpm": rpm, "total_timeout": total_timeout})
        urls = http.http_urls(
            base_url if base_url not in (None, "") else os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL,
            "anthropic", DEFAULT_BASE_URL,
        )
        api_key = api_key or os.environ.get("ANTHROPIC_API_KEY") or None
        if api_key is None and any(httpx.URL(u).host == OFFICIAL_HOST for u in urls):
            raise LMConfigError("no Anthropic API key: set ANTHROPIC_API_KEY or api_key: env(\"...\")")
        headers = {"anthropic-version": API_VERSION}
        if api_key:
            headers["x-api-key"] = api_key
        self.name = f"anthropic/{model}"
        self.model = model
        self._http = http.HTTPCaller(
            self.name, model=model, base_url=urls,
            limits=http.Limits.of(options, backoff_base),
            headers=headers, secret=api_key, key=http.KeyHint("ANTHROPIC_API_KEY", api_key is not None),
            transport=transport, sleep=sleep, clock=clock,
        )

    async def complete(self, request: LMRequest) -> LMResponse:
        data = await self._http.post("/v1/messages", self._payload(request))
        try:
            blocks = data["content"]
            tool = next((b for b in blocks if b.get("type") == "tool_use"), None)
            if tool is not None:
                text = json.dumps(tool["input"], ensure_ascii=False)
            else:
                text = "".join(b["text"] for b in blocks if b.get("type") == "text")
        except (KeyError, TypeError, AttributeError) as exc:
            raise LMError(
                f"{self.name}: the server's answer has no content blocks: {self._http.excerpt(str(data))!r}"
            ) from exc
        if data.get("stop_reason") == "max_tokens":
            log.debug("%s: answer cut at max_tokens=%s", self.name, request.max_tokens)
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return LMResponse(text, Usage(http.count(usage.get("input_tokens")), http.count(usage.get("output_tokens"))))

    def _payload(self, request: LMRequest) -> dict[str, Any]:
        refuse_choices(self.name, request)
        system = "\n\n".join(m.content for m in request.messages if m.role == "system")
        turns: list[dict[str, str]] = []
        for m in request.messages:
            if m.role == "system":
                continue
            if turns and turns[-1]["role"] == m.role:
                turns[-1]["content"] += "\n\n" + m.content
            else:
                turns.append({"role": m.role, "content": m.content})
        payload: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
            "messages": turns,
        }
        if system:
            payload["system"] = system
        if request.temperature is not None:
            payload["temperature"] = request.temperature
        if request.schema is not None:
            name = schema_name(request.schema_name)
            payload["tools"] = [{
                "name": name,
                "description": "Give the answer as this tool's input.",
                "input_schema": dict(request.schema),
            }]
            payload["tool_choice"] = {"type": "tool", "name": name}
        return payload
