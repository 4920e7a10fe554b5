"""Clients for any server that speaks the OpenAI API: `/chat/completions` and `/embeddings`.

That covers OpenAI itself and most self-hosted servers (vLLM, llama.cpp server,
LM Studio, Ollama's `/v1`). `vllm/<model>` is the same client with vLLM's
defaults. Structured output goes through `response_format` with the JSON schema.
Retries, limits and error messages come from `icldsl.lm.http`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
from typing import Any, Sequence

import httpx

from icldsl.lm import http
from icldsl.language.catalogue.lms import PROVIDERS
from icldsl.lm.base import LMConfigError, LMError, LMRequest, LMResponse, Usage, refuse_choices
from icldsl.lm.providers import declared_options

log = logging.getLogger(__name__)

EMBED_BATCH = 128  # texts per embeddings request


class _OpenAICompatible(http.HTTPClient):
    """Settings and connection shared by the chat and embedding clients.

    A key is required only at `official_host`; servers elsewhere may need none. The options'
    defaults and ranges are their declarations' (`icldsl.language.catalogue.lms`).
    `backoff_base`, `transport`, `sleep` and `clock` are for tests.
    """

    provider = "openai"
    base_url_env = "OPENAI_BASE_URL"
    key_env = "OPENAI_API_KEY"
    default_base_url = "https://api.openai.com/v1"
    official_host: str | None = "api.openai.com"

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
        options = declared_options(self.provider, PROVIDERS[self.provider].client_options, {
            "base_url": base_url, "api_key": api_key, "timeout": timeout, "max_retries": max_retries,
            "max_concurrency": max_concurrency, "rpm": rpm, "total_timeout": total_timeout})
        urls = http.http_urls(
            base_url if base_url not in (None, "") else os.environ.get(self.base_url_env) or self.default_base_url,
            self.provider, "http://localhost:8000/v1",
        )
        api_key = api_key or os.environ.get(self.key_env) or None
        if api_key is None and self.official_host and any(httpx.URL(u).host == self.official_host for u in urls):
            raise LMConfigError(
                f"no {self.provider} API key: set {self.key_env} or the api_key option "
                "(servers at a custom base_url may need none)"
            )
        limits = http.Limits.of(options, backoff_base)
        self.name = f"{self.provider}/{model}"
        self.model = model
        self._http = http.HTTPCaller(
            self.name, model=model, base_url=urls, limits=limits,
            headers={"Authorization": f"Bearer {api_key}"} if api_key else {},
            secret=api_key, key=http.KeyHint(self.key_env, api_key is not None),
            transport=transport, sleep=sleep, clock=clock,
        )


class OpenAIClient(_OpenAICompatible):
    """`LMClient` for an OpenAI-compatible `/chat/completions` endpoint."""

    async def complete(self, request: LMRequest) -> LMResponse:
        """Send one chat request, retrying transient failures."""
        data = await self._http.post("/chat/completions", self._payload(request))
        try:
            message = data["choices"][0]["message"]
            content = message["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LMError(
                f"{self.name}: the server's answer has no choices[0].message.content: "
                f"{self._http.excerpt(str(data))!r}"
            ) from exc
        if not isinstance(content, str):
            refusal = message.get("refusal") if isinstance(message, dict) else None
            why = f" (refusal: {self._http.excerpt(str(refusal))})" if refusal else ""
            raise LMError(f"{self.name}: the model returned no text content{why}")
        if data["choices"][0].get("finish_reason") == "length":
            log.debug("%s: answer cut at max_tokens=%s", self.name, request.max_tokens)
        usage = data.get("usage")
        usage = usage if isinstance(usage, dict) else {}
        return LMResponse(
            text=content,
            usage=Usage(http.count(usage.get("prompt_tokens")), http.count(usage.get("completion_tokens"))),
        )

    def _payload(self, request: LMRequest) -> dict[str, Any]:
        refuse_choices(self.name, request)
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        for key in ("temperature", "max_tokens", "seed"):
            value = getattr(request, key)
            if value is not None:
                payload[key] = value
        if request.schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": schema_name(request.schema_name),
                    "schema": dict(request.schema),
                    "strict": False,
                },
            }
        return payload


class OpenAIEmbedder(_OpenAICompatible):
    """`Embedder` for an OpenAI-compatible `/embeddings` endpoint."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), EMBED_BATCH):
            batch = list(texts[start : start + EMBED_BATCH])
            data = await self._http.post("/embeddings", {"model": self.model, "input": batch})
            try:
                rows = sorted(data["data"], key=lambda row: row["index"])
                found = [[float(x) for x in row["embedding"]] for row in rows]
            except (KeyError, TypeError, ValueError) as exc:
                raise LMError(
                    f"{self.name}: the server's answer has no data[].embedding: {self._http.excerpt(str(data))!r}"
                ) from exc
            if len(found) != len(batch):
                raise LMError(f"{self.name}: asked for {len(batch)} embeddings, got {len(found)}")
            vectors.extend(found)
        return vectors


class _VLLM:
    provider = "vllm"
    base_url_env = "VLLM_BASE_URL"
    key_env = "VLLM_API_KEY"
    default_base_url = "http://127.0.0.1:8000/v1"
    official_host = None


class VLLMClient(_VLLM, OpenAIClient):
    """`vllm/<model>`: the OpenAI client, defaulting to a vLLM server on this machine."""


class VLLMEmbedder(_VLLM, OpenAIEmbedder):
    """`vllm/<model>` embeddings through vLLM's OpenAI-compatible `/embeddings`."""


@functools.lru_cache(maxsize=256)
def schema_name(name: str) -> str:
    """`name` as OpenAI accepts it: only [a-zA-Z0-9_-], at most 64 characters."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "output"
