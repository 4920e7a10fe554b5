"""Clients for Ollama's native API: `/api/chat` and `/api/embed`.

Structured output goes through `format`, which Ollama turns into a grammar
from the JSON schema. The server is `base_url`, else `$OLLAMA_HOST`, else
http://127.0.0.1:11434. Ollama takes no key.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any, Sequence

import httpx

from icldsl.lm import http
from icldsl.language.catalogue.lms import PROVIDERS
from icldsl.lm.base import LMError, LMRequest, LMResponse, Usage, refuse_choices
from icldsl.lm.providers import declared_options

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "http://127.0.0.1:11434"


def ollama_urls(base_url: str | Sequence[str] | None) -> tuple[str, ...]:
    """The servers' URLs: `base_url` (one or a list), `$OLLAMA_HOST` (which may omit the
    scheme, or name the 0.0.0.0 the server listens on), or the default."""
    given = base_url if base_url not in (None, "") else os.environ.get("OLLAMA_HOST") or DEFAULT_BASE_URL
    urls = [given] if isinstance(given, str) else list(given)
    urls = [(url if "://" in url else f"http://{url}").replace("://0.0.0.0", "://127.0.0.1") for url in urls]
    return http.http_urls(urls, "ollama", DEFAULT_BASE_URL)


class _Ollama(http.HTTPClient):
    """Settings and connection shared by the chat and embedding clients.

    `num_ctx` sets Ollama's context window (its default silently cuts long
    prompts). The options' defaults and ranges are their declarations'
    (`icldsl.language.catalogue.lms`). `backoff_base`, `transport`, `sleep` and `clock` are for tests.
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | Sequence[str] | None = None,
        num_ctx: int | None = None,
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
        options = declared_options("ollama", PROVIDERS["ollama"].client_options, {
            "base_url": base_url, "num_ctx": num_ctx, "timeout": timeout, "max_retries": max_retries,
            "max_concurrency": max_concurrency, "rpm": rpm, "total_timeout": total_timeout})
        self.name = f"ollama/{model}"
        self.model = model
        self.num_ctx = options.get("num_ctx")
        self._http = http.HTTPCaller(
            self.name, model=model, base_url=ollama_urls(base_url),
            limits=http.Limits.of(options, backoff_base),
            transport=transport, sleep=sleep, clock=clock,
        )


class OllamaClient(_Ollama):
    """`LMClient` for Ollama's `/api/chat`, without streaming."""

    async def complete(self, request: LMRequest) -> LMResponse:
        data = await self._http.post("/api/chat", self._payload(request))
        try:
            content = data["message"]["content"]
        except (KeyError, TypeError) as exc:
            raise LMError(
                f"{self.name}: the server's answer has no message.content: {self._http.excerpt(str(data))!r}"
            ) from exc
        if not isinstance(content, str):
            raise LMError(f"{self.name}: the model returned no text content")
        if data.get("done_reason") == "length":
            log.debug("%s: answer cut at max_tokens=%s", self.name, request.max_tokens)
        return LMResponse(content, Usage(http.count(data.get("prompt_eval_count")), http.count(data.get("eval_count"))))

    def _payload(self, request: LMRequest) -> dict[str, Any]:
        refuse_choices(self.name, request)
        options = {
            "temperature": request.temperature, "num_predict": request.max_tokens,
            "seed": request.seed, "num_ctx": self.num_ctx,
        }
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": False,
        }
        if request.schema is not None:
            payload["format"] = dict(request.schema)
        options = {k: v for k, v in options.items() if v is not None}
        if options:
            payload["options"] = options
        return payload


class OllamaEmbedder(_Ollama):
    """`Embedder` for Ollama's `/api/embed`."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        payload: dict[str, Any] = {"model": self.model, "input": list(texts)}
        if self.num_ctx is not None:
            payload["options"] = {"num_ctx": self.num_ctx}
        data = await self._http.post("/api/embed", payload)
        try:
            vectors = [[float(x) for x in row] for row in data["embeddings"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise LMError(
                f"{self.name}: the server's answer has no embeddings: {self._http.excerpt(str(data))!r}"
            ) from exc
        if len(vectors) != len(texts):
            raise LMError(f"{self.name}: asked for {len(texts)} embeddings, got {len(vectors)}")
        return vectors
