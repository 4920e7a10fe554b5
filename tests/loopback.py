"""A real HTTP server on 127.0.0.1 that answers like an LM provider, from a script.

    with LoopbackServer(["hello", Reply(status=429, headers={"Retry-After": "1"}), "ok"]) as srv:
        client = OpenAIClient("m", base_url=srv.openai_url)
        ...
    srv.requests[0].json["messages"]

A script is a sequence of items answered in order, or a callable
`(Request) -> item`. An item is:

- a `Reply`, sent exactly as given (status, headers, body, delay, dropped connection);
- a `str`, the model's content, wrapped in the wire format of the request's path
  (see `FORMATS`: OpenAI and Anthropic chat, Ollama chat, and both embedding APIs,
  where the content is the JSON list of vectors);
- a `dict` or `list`, JSON-encoded and then used as content (a structured answer).

`Faulty(script)` wraps a script so that a seeded share of calls fail the way real
servers and models do (500, 429 with Retry-After, too slow, malformed, truncated or
wrongly typed answers, a body that is not JSON), counting each kind in `counts`.

Every request is recorded in `requests`. A script that runs out, raises, or meets a
path with no wire format is recorded in `errors`; leaving the `with` block raises
them, so a test cannot pass while its server misbehaved.
"""

from __future__ import annotations

import json
import random
import socket
import socketserver
import sys
import threading
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Union
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP answer.

    `body` is sent as JSON when it is a dict or list, as-is when str or bytes.
    `delay` seconds pass before answering; `drop` closes the connection unanswered.
    """

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if isinstance(self.body, (dict, list)):
            headers.setdefault("Content-Type", "application/json")
            return json.dumps(self.body).encode(), headers
        if isinstance(self.body, str):
            return self.body.encode(), headers
        return bytes(self.body or b""), headers


@dataclass(frozen=True)
class Request:
    """One request as the server received it; header names are lower-case."""

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: bytes
    json: Any  # the parsed body, or None when it is not JSON
    client: tuple[str, int] = ("", 0)  # the client's address: one per connection

    @property
    def messages(self) -> list[dict[str, Any]]:
        body = self.json if isinstance(self.json, dict) else {}
        return list(body.get("messages") or [])

    @property
    def texts(self) -> list[str]:
        """The inputs of an embeddings request (`input`, a string or a list)."""
        body = self.json if isinstance(self.json, dict) else {}
        value = body.get("input", [])
        return [value] if isinstance(value, str) else list(value)

    @property
    def last_user_message(self) -> str:
        """Text of the last user message (content blocks are joined)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _text(message.get("content"))
        return ""


Item = Union[Reply, str, dict, list]
Script = Union[Callable[[Request], Item], Iterable[Item]]


def openai_reply(
    content: str,
    *,
    prompt_tokens: int = 0,
    completion_tokens: int | None = None,
    model: str = "loopback",
    finish_reason: str = "stop",
) -> Reply:
    """A normal OpenAI chat completion whose message is `content`."""
    if completion_tokens is None:
        completion_tokens = len(content.split())
    return Reply(
        body={
            "id": "chatcmpl-loopback",
            "object": "chat.completion",
            "created": 0,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
    )


def _openai_format(content: str, request: Request) -> Reply:
    model = request.json.get("model", "loopback") if isinstance(request.json, dict) else "loopback"
    prompt = sum(len(_text(m.get("content")).split()) for m in request.messages)
    return openai_reply(content, prompt_tokens=prompt, model=model)


def _model(request: Request) -> str:
    return request.json.get("model", "loopback") if isinstance(request.json, dict) else "loopback"


def _prompt_words(request: Request) -> int:
    body = request.json if isinstance(request.json, dict) else {}
    system = _text(body.get("system"))
    return len(system.split()) + sum(len(_text(m.get("content")).split()) for m in request.messages)


def _ollama_format(content: str, request: Request) -> Reply:
    """Ollama's `/api/chat` answer without streaming."""
    return Reply(body={
        "model": _model(request),
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": content},
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": _prompt_words(request),
        "eval_count": len(content.split()),
    })


def _anthropic_format(content: str, request: Request) -> Reply:
    """Anthropic's `/v1/messages` answer: a `tool_use` block when the request forces a
    tool and the content is a JSON object (as the API returns), else a text block."""
    body = request.json if isinstance(request.json, dict) else {}
    forced = (body.get("tool_choice") or {}).get("name")
    try:
        parsed = json.loads(content)
    except ValueError:
        parsed = None
    if forced and isinstance(parsed, dict):
        blocks = [{"type": "tool_use", "id": "toolu_loopback", "name": forced, "input": parsed}]
        stop = "tool_use"
    else:
        blocks, stop = [{"type": "text", "text": content}], "end_turn"
    return Reply(body={
        "id": "msg_loopback",
        "type": "message",
        "role": "assistant",
        "model": _model(request),
        "content": blocks,
        "stop_reason": stop,
        "usage": {"input_tokens": _prompt_words(request), "output_tokens": len(content.split())},
    })


def _vectors(content: str) -> list:
    vectors = json.loads(content)
    if not isinstance(vectors, list):
        raise ValueError("embeddings content must be a JSON list of vectors")
    return vectors


def _openai_embeddings_format(content: str, request: Request) -> Reply:
    vectors = _vectors(content)
    return Reply(body={
        "object": "list",
        "model": _model(request),
        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)],
        "usage": {"prompt_tokens": sum(len(t.split()) for t in request.texts), "total_tokens": 0},
    })


def _ollama_embed_format(content: str, request: Request) -> Reply:
    return Reply(body={"model": _model(request), "embeddings": _vectors(content),
                       "prompt_eval_count": sum(len(t.split()) for t in request.texts)})


# Request path -> builder of a normal reply carrying some content in that wire format.
FORMATS: dict[str, Callable[[str, Request], Reply]] = {
    "/v1/chat/completions": _openai_format,
    "/api/chat": _ollama_format,
    "/v1/messages": _anthropic_format,
    "/v1/embeddings": _openai_embeddings_format,
    "/api/embed": _ollama_embed_format,
}
EMBEDDING_PATHS = frozenset({"/v1/embeddings", "/api/embed"})


def toy_embedding(text: str, dim: int = 8) -> list[float]:
    """A deterministic vector for `text` (letter counts folded into `dim` slots)."""
    vector = [0.0] * dim
    for char in text.lower():
        if char.isalnum():
            vector[ord(char) % dim] += 1.0
    return vector


def embed_script(request: Request) -> list:
    """A callable script answering any embeddings request with `toy_embedding`s."""
    return [toy_embedding(t) for t in request.texts]


def error_reply(status: int, message: str, headers: Mapping[str, str] | None = None) -> Reply:
    """An error in the OpenAI shape `{"error": {"message": ...}}`."""
    return Reply(status=status, body={"error": {"message": message}}, headers=dict(headers or {}))


class LoopbackServer:
    """A scripted LM server on 127.0.0.1; use as a context manager or start/stop."""

    def __init__(self, script: Script | None = None) -> None:
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.script = script

    @property
    def script(self) -> Script | None:
        return self._script

    @script.setter
    def script(self, script: Script | None) -> None:
        """A callable is kept; any other iterable becomes a queue of items."""
        self._script = script if script is None or callable(script) else deque(script)

    def push(self, *items: Item) -> None:
        """Append items to a queue script (starting one if there is none)."""
        with self._lock:
            if self._script is None:
                self._script = deque()
            if not isinstance(self._script, deque):
                raise TypeError("push() needs a queue script, not a callable")
            self._script.extend(items)

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the loopback server is not running")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def ollama_url(self) -> str:
        """The base_url an Ollama client should use (the server's root)."""
        return self.url

    @property
    def anthropic_url(self) -> str:
        """The base_url an Anthropic client should use (the server's root)."""
        return self.url

    @property
    def openai_url(self) -> str:
        """The base_url an OpenAI-compatible client should use."""
        return f"{self.url}/v1"

    def start(self) -> LoopbackServer:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer(self)
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01},
                name="loopback-lm", daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and pending delays, join all threads."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler
        self._httpd.server_close()  # joins the handler threads
        assert self._thread is not None
        self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.stop()
        if exc_type is None and self.errors:
            raise AssertionError("loopback server errors:\n" + "\n".join(self.errors))

    # -- called from handler threads ------------------------------------------

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _fail(self, message: str) -> Reply:
        with self._lock:
            self.errors.append(message)
        return error_reply(500, f"loopback: {message}")

    def _reply_for(self, request: Request) -> Reply:
        with self._lock:
            script = self._script
            queued = script.popleft() if isinstance(script, deque) and script else None
        if script is None:
            return self._fail(f"no script for {request.method} {request.path}")
        if isinstance(script, deque):
            if queued is None:
                return self._fail(f"script exhausted at {request.method} {request.path}")
            item = queued
        else:
            item = script(request)
        if isinstance(item, Reply):
            return item
        if isinstance(item, (dict, list)):
            item = json.dumps(item)
        if not isinstance(item, str):
            return self._fail(f"script gave {type(item).__name__}, not Reply/str/dict/list")
        return self._build(item, request)

    def _build(self, content: str, request: Request) -> Reply:
        build = FORMATS.get(request.path)
        if build is None:
            return self._fail(f"no wire format for path {request.path}")
        try:
            return build(content, request)
        except ValueError as exc:
            return self._fail(f"cannot build a {request.path} answer from {content[:80]!r}: {exc}")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: LoopbackServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # Skip HTTPServer's reverse DNS lookup of the host, which can be slow.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.owner._lock:
            self.owner._conns.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.owner._lock:
            self.owner._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            return  # the client went away (e.g. it timed out); not the server's fault
        self.owner._fail("handler raised:\n" + traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if len(raw) < length:
            # the connection was cut mid-body (stop() shuts sockets down): no request arrived,
            # so there is nothing to record or script an answer for
            self.close_connection = True
            return
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        parts = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=parts.path,
            query=parts.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=raw,
            json=parsed,
            client=self.client_address,
        )
        owner = self.server.owner
        owner._record(request)
        try:
            reply = owner._reply_for(request)
            if reply.delay and owner._stopping.wait(reply.delay):
                reply = Reply(drop=True)  # shutting down: do not answer
            if reply.drop:
                self.close_connection = True
                return
            data, headers = reply.encode()
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            owner._done()

    do_GET = do_PUT = do_DELETE = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean


def _text(content: Any) -> str:
    """Message content as text: a string, or a list of blocks with `text`."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return ""


FAULT_KINDS = ("500", "429", "slow", "malformed", "truncated", "wrong_type", "garbled")


class Faulty:
    """A callable script that answers through `script` (a callable) but injects faults.

    Each request draws one kind from `rates` (seeded): `500`; `429` with
    `Retry-After: retry_after`; `slow`, the right answer after `slow_delay` seconds
    (set it above the client's timeout); `malformed`, the answer as a Python dict in
    prose and a code fence; `truncated`, the answer's JSON cut in half; `wrong_type`,
    every number replaced by a word; `garbled`, a 200 whose body is not JSON. Malformed,
    truncated and wrong-typed faults only touch answers that are JSON objects. `counts`
    tallies what was sent, by kind (`ok` for untouched answers).
    """

    DEFAULT_RATES: Mapping[str, float] = {
        "500": 0.20, "429": 0.05, "slow": 0.03, "malformed": 0.05,
        "truncated": 0.05, "wrong_type": 0.05, "garbled": 0.01,
    }

    def __init__(
        self,
        script: Callable[[Request], Item],
        *,
        seed: int = 0,
        rates: Mapping[str, float] | None = None,
        retry_after: str = "0.05",
        slow_delay: float = 2.0,
    ) -> None:
        self.script = script
        self.rates = dict(self.DEFAULT_RATES if rates is None else rates)
        unknown = set(self.rates) - set(FAULT_KINDS)
        if unknown or sum(self.rates.values()) > 1:
            raise ValueError(f"bad fault rates: {self.rates}")
        self.retry_after, self.slow_delay = retry_after, slow_delay
        self.counts: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def __call__(self, request: Request) -> Item:
        item = self.script(request)
        with self._lock:
            kind = self._draw()
            obj = json.loads(item) if isinstance(item, str) and item.startswith("{") else item
            if kind in ("malformed", "truncated", "wrong_type") and not isinstance(obj, dict):
                kind = "ok"
            self.counts[kind] += 1
        if kind == "500":
            return error_reply(500, "loopback: injected server error")
        if kind == "429":
            return error_reply(429, "loopback: injected rate limit", {"Retry-After": self.retry_after})
        if kind == "garbled":
            return Reply(body="<html>502 Bad Gateway</html>")
        if kind == "slow":
            content = item if isinstance(item, str) else json.dumps(item)
            return replace(FORMATS[request.path](content, request), delay=self.slow_delay)
        if kind == "malformed":
            return f"Sure! Here is the answer:\n```json\n{obj!r}\n```"
        if kind == "truncated":
            text = json.dumps(obj)
            return text[: len(text) // 2]
        if kind == "wrong_type":
            return {k: ("many" if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
                    for k, v in obj.items()}
        return item

    def _draw(self) -> str:
        x = self._random.random()
        for kind, rate in self.rates.items():
            if x < rate:
                return kind
            x -= rate
        return "ok"
