"""A client for any server that speaks the OpenAI chat-completions API.

That covers OpenAI itself and most self-hosted servers (vLLM, llama.cpp server,
LM Studio, Ollama's `/v1`). Transient failures (429, 5xx, timeouts, dropped
connections) are retried with exponential backoff; mistakes the caller must fix
(a bad key, an unknown model, a rejected request) fail at once.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import os
import random
import re
import time
from datetime import datetime
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import httpx

from icldsl.lm.base import LMConfigError, LMError, LMRequest, LMResponse, Usage

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
OFFICIAL_HOST = "api.openai.com"

# Options an `lm` block may set for this provider, besides the common decoding ones.
OPTIONS: dict[str, type] = {
    "base_url": str,
    "api_key": str,
    "timeout": float,
    "max_retries": int,
    "max_concurrency": int,
}

MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is cut to this
_ERROR_EXCERPT = 300  # characters of a server's error message kept in an LMError
_RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx


class OpenAIClient:
    """`LMClient` for an OpenAI-compatible `/chat/completions` endpoint.

    `backoff_base` is the first retry delay in seconds (it doubles per retry, plus
    up to `backoff_base` of jitter); `sleep` is how waiting happens, for tests.
    Use one client within one event loop, and `aclose()` it (or `async with`).
    """

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 3,
        max_concurrency: int = 8,
        backoff_base: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise LMConfigError(
                f"openai base_url {base_url!r} is not an http(s) URL; "
                "write it like 'http://localhost:8000/v1'"
            )
        api_key = api_key or os.environ.get("OPENAI_API_KEY") or None
        if api_key is None and parts.hostname == OFFICIAL_HOST:
            raise LMConfigError(
                "no OpenAI API key: set OPENAI_API_KEY or the api_key option "
                "(servers at a custom base_url may need none)"
            )
        if timeout <= 0 or max_retries < 0 or max_concurrency < 1 or backoff_base < 0:
            raise LMConfigError(
                "openai options out of range: need timeout > 0, max_retries >= 0, "
                "max_concurrency >= 1, backoff_base >= 0"
            )
        self.name = f"openai/{model}"
        self.model = model
        self.base_url = base_url
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.max_concurrency = max_concurrency
        self.backoff_base = backoff_base
        self._api_key = api_key
        self._transport = transport
        self._sleep = sleep
        self._jitter = random.Random()
        self._http: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None

    def __repr__(self) -> str:
        return f"OpenAIClient({self.model!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> OpenAIClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool; the client may not be used afterwards."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def complete(self, request: LMRequest) -> LMResponse:
        """Send one chat request, retrying transient failures."""
        payload = self._payload(request)
        url = f"{self.base_url}/chat/completions"
        attempts = self.max_retries + 1
        last = ""
        for attempt in range(1, attempts + 1):
            retry_after: float | None = None
            try:
                async with self._slots():
                    log.debug("%s: POST %s (attempt %d)", self.name, url, attempt)
                    response = await self._client().post(url, json=payload)
            except httpx.TimeoutException as exc:
                last = f"timed out after {self.timeout:g} s ({type(exc).__name__})"
            except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                last = f"connection failed ({type(exc).__name__}: {self._redact(str(exc))})"
            except httpx.TransportError as exc:
                raise LMError(f"{self.name}: cannot reach {url}: {type(exc).__name__}") from exc
            else:
                status = response.status_code
                if 200 <= status < 300:
                    return self._parse(response)
                if status not in _RETRY_STATUSES and status < 500:
                    raise self._status_error(response, url)
                last = f"HTTP {status}{self._server_message(response, prefix=': ')}"
                retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt == attempts:
                break
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.warning(
                "%s: %s; retry %d of %d in %.2f s",
                self.name, last, attempt, self.max_retries, delay,
            )
            await self._sleep(delay)
        raise LMError(
            f"{self.name}: no answer after {attempts} attempt(s); last: {last}",
            retryable=True,
        )

    # -- request and response -------------------------------------------------

    def _payload(self, request: LMRequest) -> dict[str, Any]:
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

    def _parse(self, response: httpx.Response) -> LMResponse:
        try:
            data = response.json()
        except ValueError as exc:
            raise LMError(
                f"{self.name}: the server's answer is not JSON: {self._excerpt(response.text)!r}"
            ) from exc
        try:
            message = data["choices"][0]["message"]
            content = message["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LMError(
                f"{self.name}: the server's answer has no choices[0].message.content: "
                f"{self._excerpt(response.text)!r}"
            ) from exc
        if not isinstance(content, str):
            refusal = message.get("refusal") if isinstance(message, dict) else None
            why = f" (refusal: {self._excerpt(str(refusal))})" if refusal else ""
            raise LMError(f"{self.name}: the model returned no text content{why}")
        usage = data.get("usage") if isinstance(data, dict) else None
        usage = usage if isinstance(usage, dict) else {}
        return LMResponse(
            text=content,
            usage=Usage(
                prompt_tokens=_count(usage.get("prompt_tokens")),
                completion_tokens=_count(usage.get("completion_tokens")),
            ),
        )

    def _status_error(self, response: httpx.Response, url: str) -> LMError:
        status = response.status_code
        detail = self._server_message(response, prefix=" (server said: ", suffix=")")
        if status in (401, 403):
            if self._api_key is None:
                fix = "no API key was sent; set OPENAI_API_KEY or the api_key option"
            else:
                fix = "check OPENAI_API_KEY or the api_key option and what the key may access"
            return LMError(
                f"{self.name}: HTTP {status}, the server refused the API key: {fix}{detail}"
            )
        if status == 404:
            return LMError(
                f"{self.name}: HTTP 404 from {url}: check the model name {self.model!r} "
                f"and the base_url {self.base_url!r}{detail}"
            )
        return LMError(f"{self.name}: HTTP {status}, the server rejected the request{detail}")

    # -- helpers --------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
            self._http = httpx.AsyncClient(
                headers=headers, timeout=self.timeout, transport=self._transport
            )
        return self._http

    def _slots(self) -> asyncio.Semaphore:
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        return self._semaphore

    def _backoff(self, attempt: int) -> float:
        return self.backoff_base * 2 ** (attempt - 1) + self._jitter.uniform(0, self.backoff_base)

    def _server_message(self, response: httpx.Response, prefix: str = "", suffix: str = "") -> str:
        """The error message in a failed response's body, redacted and truncated."""
        try:
            body = response.json()
        except ValueError:
            text = response.text
        else:
            error = body.get("error", body) if isinstance(body, dict) else body
            if isinstance(error, dict):
                error = error.get("message", error)
            text = error if isinstance(error, str) else str(error)
        text = self._excerpt(text.strip())
        return f"{prefix}{text}{suffix}" if text else ""

    def _excerpt(self, text: str) -> str:
        text = self._redact(text)
        return text if len(text) <= _ERROR_EXCERPT else text[:_ERROR_EXCERPT] + "..."

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "<api key>") if self._api_key else text


def schema_name(name: str) -> str:
    """`name` as OpenAI accepts it: only [a-zA-Z0-9_-], at most 64 characters."""
    return re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "output"


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or HTTP date), capped."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when: datetime = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
