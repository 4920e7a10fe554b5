"""What each LM call was: the record the usage tables count and a trace shows.

`connect`'s connection makes one `Call` per request: who asked (`Site`: a program's step,
or a reward or optimizer), the LM asked and the one that answered (itself or a fallback),
the messages, the raw answer, what the runtime read from it, tokens, latency, whether the
cache answered, and the retries the HTTP client made (`note_retry`, through a context
variable, so the layers between need not pass the call along).

A `Tracer` receives each finished call: `JSONLTrace` writes one JSON line per call
(`--trace FILE`), `OTelTrace` one span following OpenTelemetry's semantic conventions
for generative AI. Neither ever holds a key: requests carry none, and client names and
error messages are the redacted ones the clients log.
"""

from __future__ import annotations

import contextvars
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

from .base import LMRequest, Usage


@dataclass(frozen=True, slots=True)
class Site:
    """Who made a call: `step` is a program step's path (`program` its program), or the
    purpose of a reward's or optimizer's LM (`reward lm_judge`)."""

    step: str
    program: str | None = None


@dataclass(frozen=True, slots=True)
class CallCost:
    """What one call cost, under the LM that answered it (its own name, or the fallback's);
    `latency` is None when the cache answered or the call was refused offline."""

    lm: str
    usage: Usage = field(default_factory=Usage)
    cached: bool = False
    missing: bool = False
    latency: float | None = None


@dataclass(slots=True)
class Call:
    """One LM call as a trace shows it. `output` is what the runtime read from the answer,
    `refused` why it could not read one, `error` why no answer came."""

    site: Site
    lm: str
    target: str
    request: LMRequest
    started: float = field(default_factory=time.time)  # seconds since the epoch
    ended: float | None = None
    answered_by: str | None = None  # the lm that answered: `lm`, or a fallback
    text: str | None = None
    usage: Usage = field(default_factory=Usage)
    latency: float | None = None
    cached: bool = False
    missing: bool = False
    retries: int = 0
    error: str | None = None
    output: Mapping[str, Any] | None = None
    refused: str | None = None

    @property
    def cost(self) -> CallCost:
        return CallCost(self.answered_by or self.lm, self.usage, self.cached, self.missing, self.latency)

    def to_json(self) -> dict[str, Any]:
        """The trace's line for this call."""
        request = self.request
        return {
            "program": self.site.program, "step": self.site.step, "lm": self.lm, "target": self.target,
            "answered_by": self.answered_by,
            "fallback": self.answered_by if self.answered_by not in (None, self.lm) else None,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "schema_name": request.schema_name,
            "temperature": request.temperature, "max_tokens": request.max_tokens, "seed": request.seed,
            "answer": self.text, "output": self.output, "refused": self.refused, "error": self.error,
            "usage": {"prompt_tokens": self.usage.prompt_tokens, "completion_tokens": self.usage.completion_tokens},
            "latency": self.latency, "cached": self.cached, "missing": self.missing, "retries": self.retries,
            "started": self.started, "ended": self.ended,
        }


_CURRENT: contextvars.ContextVar[Call | None] = contextvars.ContextVar("icldsl_lm_call", default=None)


def note_retry() -> None:
    """Count a retry of the call in progress in this context (HTTP clients call it)."""
    call = _CURRENT.get()
    if call is not None:
        call.retries += 1


def current(call: Call) -> contextvars.Token:
    """Make `call` the call in progress; reset with the token when it ends."""
    return _CURRENT.set(call)


def finish(token: contextvars.Token) -> None:
    _CURRENT.reset(token)


class Tracer(Protocol):
    """Receives each call once its answer has been read (or has failed)."""

    def record(self, call: Call) -> None: ...


class JSONLTrace:
    """One JSON line per call, appended to `path` as each call ends (so a fit stopped by
    Ctrl-C keeps the lines of its finished calls).

    Each line goes down in one `write` to a file opened for appending, so neither a
    signal nor another writer (a thread, or another process tracing to the same file)
    can land inside it: a reader never meets a torn line.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def record(self, call: Call) -> None:
        line = (json.dumps(call.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            if self._fd < 0:
                return
            written = os.write(self._fd, line)
            while written < len(line):  # only on a full disk or a pipe: finish the line
                written += os.write(self._fd, line[written:])

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


class OTelTrace:
    """A span per call, after OpenTelemetry's semantic conventions for generative AI
    (`gen_ai.*`: operation `chat`, provider, request model and settings, token usage,
    `error.type`; the messages as `gen_ai.input.messages` and `gen_ai.output.messages`),
    plus `icldsl.*` attributes for the program, step, lm, cache and retries.

    Spans go to `provider`, else OpenTelemetry's global tracer provider (a no-op one
    unless the application, or `opentelemetry-instrument`, set one up).
    """

    def __init__(self, provider: Any = None) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer = trace.get_tracer("icldsl", tracer_provider=provider)

    def record(self, call: Call) -> None:
        provider, _, model = call.target.partition("/") if not call.target.startswith("local:") \
            else ("local", "", call.target.removeprefix("local:"))
        end = call.ended or call.started
        span = self._tracer.start_span(f"chat {model}", kind=self._trace.SpanKind.CLIENT,
                                       start_time=int(call.started * 1e9))
        if span.is_recording():  # only then are the attributes worth building
            request = call.request
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": provider, "gen_ai.system": provider,
                "gen_ai.request.model": model, "gen_ai.output.type": "json",
                "gen_ai.usage.input_tokens": call.usage.prompt_tokens,
                "gen_ai.usage.output_tokens": call.usage.completion_tokens,
                "gen_ai.input.messages": json.dumps(
                    [{"role": m.role, "parts": [{"type": "text", "content": m.content}]} for m in request.messages],
                    ensure_ascii=False),
                "icldsl.step": call.site.step, "icldsl.lm": call.lm, "icldsl.cached": call.cached,
                "icldsl.retries": call.retries,
            }
            for key, value in (("temperature", request.temperature), ("max_tokens", request.max_tokens),
                               ("seed", request.seed)):
                if value is not None:
                    attributes[f"gen_ai.request.{key}"] = value
            if call.site.program is not None:
                attributes["icldsl.program"] = call.site.program
            if call.answered_by is not None:
                attributes["icldsl.answered_by"] = call.answered_by
            if call.text is not None:
                attributes["gen_ai.output.messages"] = json.dumps(
                    [{"role": "assistant", "parts": [{"type": "text", "content": call.text}]}], ensure_ascii=False)
            problem = call.error or call.refused
            if problem is not None:
                attributes["error.type"] = "icldsl.CacheMiss" if call.missing else \
                    "icldsl.LMError" if call.error else "icldsl.InvalidAnswer"
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, problem))
            span.set_attributes(attributes)
        span.end(end_time=int(end * 1e9))


def otel_tracer() -> OTelTrace | None:
    """Spans to OpenTelemetry's global provider when its API is installed, else None."""
    try:
        return OTelTrace()
    except ImportError:
        return None
