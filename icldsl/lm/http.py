"""What every HTTP provider shares: its endpoints and their connections
(`endpoints.py`, `connections.py`), a bound on requests in flight and per minute,
retries with exponential backoff and jitter on transient failures (429, 5xx,
timeouts, dropped connections) honouring `Retry-After`, a deadline per call across
its retries, and errors and logs that say what to fix without ever showing a secret: the
key, a URL's user-info (sent as Basic auth) or its token (`?token=...`, sent as is).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import logging
import random
import re
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Awaitable, Callable, Mapping, Self, Sequence
from urllib.parse import urlsplit, urlunsplit

import httpx

from icldsl.lm.base import LMConfigError, LMError
from icldsl.lm.connections import Connections
from icldsl.lm.endpoints import Endpoint, Endpoints
from icldsl.lm.trace import note_retry
from icldsl.language.options import url_secrets

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 60.0  # seconds; a longer Retry-After is cut to this
ERROR_EXCERPT = 300  # characters of a server's error message kept in an LMError
RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx
WINDOW = 60.0  # seconds over which `rpm` counts

# Credentials a server may echo back in an error (`Authorization: Basic dXNlcjpwdw==`),
# whichever they are: a token of 8 or more characters with a digit or a symbol in it (so
# "Basic authentication failed" stays as it is); those this client sends are also redacted by value.
_AUTHORIZATION = re.compile(r"\b(Basic|Bearer)(\s+)(?=[\w+/=.~-]*[\d+/=._~-])[A-Za-z0-9+/=._~-]{8,}", re.IGNORECASE)

# A request body as JSON text; made once (json.dumps with options makes an encoder per call).
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode

Sleep = Callable[[float], Awaitable[Any]]
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class Limits:
    """How one LM's calls are paced and retried, from its options as declared (with their
    defaults and ranges) in `icldsl.language.catalogue.lms`.

    `timeout` bounds each attempt, `total_timeout` (if set) a whole call from its
    first attempt to its last retry; `rpm` caps request starts in any minute;
    `backoff_base` is the first retry delay (it doubles per retry, plus up to
    `backoff_base` of jitter).
    """

    timeout: float
    max_retries: int
    max_concurrency: int
    rpm: int | None
    total_timeout: float | None
    backoff_base: float = 0.5

    @classmethod
    def of(cls, options: Mapping[str, Any], backoff_base: float) -> "Limits":
        """The limits of a client's resolved options (`providers.declared_options`)."""
        return cls(options["timeout"], options["max_retries"], options["max_concurrency"], options.get("rpm"),
                   options.get("total_timeout"), backoff_base)


def http_url(url: str, provider: str, example: str) -> str:
    """`url` without a trailing slash, or an LMConfigError if it is not http(s)."""
    url = url.rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LMConfigError(f"{provider} base_url {redact_url(url)!r} is not an http(s) URL; write it like {example!r}")
    return url


def redact_url(url: str) -> str:
    """`url` with its secrets (user-info, token) replaced by `<credentials>`."""
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        url = url.replace(secret, "<credentials>")
    return url


def join_url(base: str, path: str) -> str:
    """`path` appended to the path of `base`, before its query: `http://h/v1?key=k` and
    `/chat/completions` give `http://h/v1/chat/completions?key=k`."""
    if "?" not in base and "#" not in base:
        return base + path
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + path, fragment=""))


def http_urls(base_url: str | Sequence[str], provider: str, example: str) -> tuple[str, ...]:
    """The endpoints of `base_url`, one URL or a list of them, each checked by `http_url`."""
    urls = tuple(http_url(url, provider, example)
                 for url in ((base_url,) if isinstance(base_url, str) else base_url))
    if not urls:
        raise LMConfigError(f"{provider} base_url is an empty list (are its env(...) variables set?); "
                            f"give at least one URL, like {example!r}")
    seen: set[str] = set()
    twice = next((url for url in urls if url in seen or seen.add(url)), None)  # linear in a list of any length
    if twice:
        raise LMConfigError(f"{provider} base_url lists {redact_url(twice)!r} twice")
    return urls


class RateLimiter:
    """At most `rpm` request starts in any window of 60 seconds, first come first served."""

    def __init__(self, rpm: int, *, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> None:
        self.rpm = rpm
        self._clock, self._sleep = clock, sleep
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._clock()
                while self._starts and now - self._starts[0] >= WINDOW:
                    self._starts.popleft()
                if len(self._starts) < self.rpm:
                    self._starts.append(now)
                    return
                wait = self._starts[0] + WINDOW - now
                log.debug("rpm limit %d reached; waiting %.2f s", self.rpm, wait)
                await self._sleep(wait)


@dataclass(frozen=True, slots=True)
class _Failure:
    """An attempt worth retrying: why it failed, whether its endpoint is to blame (so
    another may answer at once), and how long the server asked to wait."""

    reason: str
    endpoint_down: bool = False
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class KeyHint:
    """How a provider's key is set, for messages: its variable, and whether it sent one."""

    env: str | None
    sent: bool


class HTTPCaller:
    """POSTs JSON for one LM, with the limits, retries and error messages above.

    `base_url` is one URL or several (`icldsl.lm.endpoints`): each attempt goes to the
    least busy endpoint that is up, and a retry after a failure that another server
    could fix goes to another one at once. `name` prefixes every message
    (`openai/gpt-4.1-mini`); `secret` is redacted from anything that leaves this
    object. `transport`, `sleep` and `clock` are injectable for tests. Use it within
    one event loop and `aclose()` it.
    """

    def __init__(
        self,
        name: str,
        *,
        model: str,
        base_url: str | Sequence[str],
        limits: Limits,
        headers: Mapping[str, str] | None = None,
        secret: str | None = None,
        key: KeyHint = KeyHint(None, False),
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.name, self.model, self.limits = name, model, limits
        # Credentials in a URL's user-info (`http://user:pass@host`) travel as Basic auth, as
        # httpx would send them, but the URL kept, logged and quoted in errors is without them.
        urls = [httpx.URL(u) for u in ((base_url,) if isinstance(base_url, str) else base_url)]
        self.base_urls = tuple(str(u.copy_with(username=None, password=None)) if u.userinfo else str(u) for u in urls)
        self._auth = {clean: _basic_auth(u.username, u.password) for clean, u in zip(self.base_urls, urls) if u.userinfo}
        self._headers = {"content-type": "application/json", **{k.lower(): v for k, v in (headers or {}).items()}}
        shown = [(secret, "<api key>")] + [(s, "<credentials>") for u in urls for s in url_secrets(str(u))]
        shown += [(auth.removeprefix("Basic "), "<credentials>") for auth in self._auth.values()]
        # Redacted from every message, longest first (a password inside its user-info goes with it).
        self._secrets = tuple(sorted(((s, label) for s, label in shown if len(s or "") > 2),
                                     key=lambda pair: len(pair[0]), reverse=True))
        self._key = key
        self._transport = transport
        self._sleep, self._clock = sleep, clock
        self._jitter = random.Random()
        self._endpoints: Endpoints | None = None
        self._slots: asyncio.Semaphore | None = None
        self._rate = RateLimiter(limits.rpm, clock=clock, sleep=sleep) if limits.rpm else None

    @property
    def base_url(self) -> str:
        """The endpoint URL, or the URLs joined by commas, without their secrets."""
        return self.redact(", ".join(self.base_urls))

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            self._endpoints = Endpoints(self.base_urls, lambda url: Connections(
                url, timeout=self.limits.timeout, headers=self._headers_for(url), transport=self._transport),
                clock=self._clock)
        return self._endpoints

    def prepare(self) -> None:
        """Make the transports of as many requests as may be in flight, shared out between
        the endpoints as the least-busy choice shares the requests (with more endpoints
        than calls in flight, one each for as many as there are calls: fewer than twice
        `max_concurrency` in all, however long the list)."""
        endpoints = self.endpoints
        share = -(-self.limits.max_concurrency // len(endpoints))
        for endpoint in endpoints.all[:self.limits.max_concurrency]:
            endpoint.connections.reserve(share)

    async def aclose(self) -> None:
        if self._endpoints is not None:
            await self._endpoints.aclose()
            self._endpoints = None

    async def post(self, path: str, payload: Mapping[str, Any]) -> Any:
        """POST `payload` to `path` under an endpoint's URL; the parsed JSON of a 2xx answer.

        Raises LMError: retryable after the retries or the deadline ran out,
        not retryable (at once) for an answer the caller must fix.
        """
        body = _encode(payload).encode()
        limits, endpoints = self.limits, self.endpoints
        attempts = limits.max_retries + 1
        deadline: float | None = None
        for attempt in range(1, attempts + 1):
            try:
                async with self._semaphore():
                    if self._rate is not None:
                        await self._rate.acquire()
                    if deadline is None and limits.total_timeout is not None:
                        deadline = self._clock() + limits.total_timeout
                    endpoint = endpoints.pick()
                    if endpoint is None:
                        failure = _Failure(f"every endpoint is out ({endpoints.describe()})",
                                           retry_after=max(endpoints.next_ready(), self._backoff(attempt)))
                    else:
                        outcome = await self._attempt(endpoint, path, body, deadline, attempt)
                        if not isinstance(outcome, _Failure):
                            return outcome
                        failure = outcome
            except TimeoutError:
                last = f"total_timeout of {limits.total_timeout:g} s reached"
                break
            last = failure.reason
            if attempt == attempts:
                break
            if failure.endpoint_down and len(endpoints) > 1 and endpoints.pick() is not None:
                delay = 0.0  # another endpoint is up: go there now
            else:
                delay = failure.retry_after if failure.retry_after is not None else self._backoff(attempt)
            if deadline is not None and self._clock() + delay >= deadline:
                last += f"; the next retry would pass total_timeout ({limits.total_timeout:g} s)"
                break
            log.warning("%s: %s; retry %d of %d in %.2f s", self.name, self.redact(last), attempt, limits.max_retries,
                        delay)
            note_retry()
            if delay:
                await self._sleep(delay)
        raise LMError(self.redact(f"{self.name}: no answer after {attempt} attempt(s); last: {last}"), retryable=True)

    async def _attempt(self, endpoint: Endpoint, path: str, body: bytes, deadline: float | None,
                       attempt: int) -> Any:
        """One request to `endpoint`: the parsed answer, a _Failure worth retrying, or
        LMError (raised) for one that is not."""
        url = join_url(endpoint.url, path)
        endpoints = self.endpoints
        where = f" at {endpoint.url}" if len(endpoints) > 1 else ""
        endpoint.in_flight += 1
        try:
            if log.isEnabledFor(logging.DEBUG):  # the redaction is work every attempt would pay
                log.debug("%s: POST %s (attempt %d)", self.name, self.redact(url), attempt)
            # In a task of its own: httpx suspends a dozen times per request, and each resumption
            # of the caller's task walks its whole chain of awaits (program, step, client, ...).
            sending = asyncio.ensure_future(endpoint.connections.post(url, body))
            if deadline is None:
                response = await sending
            else:
                async with asyncio.timeout(self._remaining(deadline)):
                    response = await sending
        except httpx.TimeoutException as exc:
            reason = f"timed out after {self.limits.timeout:g} s ({type(exc).__name__})"
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            reason = f"connection failed ({type(exc).__name__}: {self.redact(str(exc))})"
        except httpx.TransportError as exc:
            raise LMError(self.redact(f"{self.name}: cannot reach {url}: {type(exc).__name__}")) from exc
        else:
            status = response.status_code
            if 200 <= status < 300 or (status < 500 and status not in RETRY_STATUSES):
                endpoints.succeeded(endpoint)  # the server is up, even when the request is wrong
                if status >= 300:
                    raise self._status_error(response, url, endpoint.url)
                return self._json(response, endpoint.url)
            reason = f"HTTP {status}{self.server_message(response, prefix=': ')}"
            if status < 500:  # 408, 429: this server is busy, not broken
                return _Failure(reason + where, retry_after=parse_retry_after(response.headers.get("retry-after")))
        finally:
            endpoint.in_flight -= 1
        endpoints.failed(endpoint, reason)
        return _Failure(reason + where, endpoint_down=True)

    # -- messages -----------------------------------------------------------------

    def _json(self, response: httpx.Response, base_url: str) -> Any:
        try:
            return json.loads(response.content)
        except ValueError as exc:
            raise LMError(self.redact(
                f"{self.name}: the server's answer is not JSON: {self.excerpt(response.text)!r}; "
                f"is base_url {base_url!r} right?"
            )) from exc

    def _status_error(self, response: httpx.Response, url: str, base_url: str) -> LMError:
        """The LMError of an answer with a status the caller must fix (4xx), without secrets."""
        return LMError(self.redact(self._status_message(response, url, base_url)))

    def _status_message(self, response: httpx.Response, url: str, base_url: str) -> str:
        status = response.status_code
        detail = self.server_message(response, prefix=" (server said: ", suffix=")")
        if status in (401, 403):
            env = self._key.env
            if env is None:
                fix = f"this provider sends no key; check base_url {base_url!r}"
            elif not self._key.sent:
                fix = f"no API key was sent; set {env} or the api_key option"
            else:
                fix = f"check {env} or the api_key option and what the key may access"
            return f"{self.name}: HTTP {status}, the server refused the request: {fix}{detail}"
        if status == 404:
            return (f"{self.name}: HTTP 404 from {url}: check the model name {self.model!r} "
                    f"and the base_url {base_url!r}{detail}")
        if status == 413:
            return f"{self.name}: HTTP 413, the request is too large: use fewer or shorter examples{detail}"
        return (f"{self.name}: HTTP {status}, the server rejected the request{detail}; "
                "check the lm options (max_tokens, temperature) and that the model supports JSON schema output")

    def server_message(self, response: httpx.Response, prefix: str = "", suffix: str = "") -> str:
        """The error message in a failed response's body, redacted and truncated.

        Reads `{"error": {"message": ...}}` (OpenAI, Anthropic), `{"error": "..."}`
        (Ollama), or the raw text.
        """
        try:
            body = response.json()
        except ValueError:
            text = response.text
        else:
            error = body.get("error", body) if isinstance(body, dict) else body
            if isinstance(error, dict):
                error = error.get("message", error)
            text = error if isinstance(error, str) else str(error)
        text = self.excerpt(text.strip())
        return f"{prefix}{text}{suffix}" if text else ""

    def excerpt(self, text: str) -> str:
        text = self.redact(text)
        return text if len(text) <= ERROR_EXCERPT else text[:ERROR_EXCERPT] + "..."

    def redact(self, text: str) -> str:
        """`text` without the secrets this client sends (its key, its URLs' credentials and
        tokens) or an authorization a server echoed."""
        for secret, label in self._secrets:
            text = text.replace(secret, label)
        return _AUTHORIZATION.sub(r"\1\2<credentials>", text)

    # -- helpers ------------------------------------------------------------------

    def _headers_for(self, base_url: str) -> dict[str, str]:
        """The headers of every request to the endpoint at `base_url`."""
        auth = self._auth.get(base_url)
        return self._headers if auth is None else {**self._headers, "authorization": auth}

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.limits.max_concurrency)
        return self._slots

    def _remaining(self, deadline: float) -> float:
        return max(deadline - self._clock(), 0.0)

    def _backoff(self, attempt: int) -> float:
        base = self.limits.backoff_base
        return base * 2 ** (attempt - 1) + self._jitter.uniform(0, base)


def parse_retry_after(value: str | None) -> float | None:
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


def count(value: Any) -> int:
    """A token count from a usage field, 0 when absent or not an integer."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class HTTPClient:
    """What every HTTP client shares: `name`, `model` and an HTTPCaller in `_http`,
    set by the subclass; closing, as a context manager too."""

    name: str
    model: str
    _http: HTTPCaller

    @property
    def base_url(self) -> str:
        return self._http.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.model!r}, base_url={self.base_url!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def prepare(self) -> None:
        """Make ready for `max_concurrency` calls in flight before the first starts."""
        self._http.prepare()

    async def aclose(self) -> None:
        """Close the connection pool; the client may not be used afterwards."""
        await self._http.aclose()


def _basic_auth(username: str, password: str) -> str:
    """The `authorization` header value of HTTP Basic auth (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
