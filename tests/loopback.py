"""A real HTTP server on 127.0.0.1 that answers like an LM provider, from a script.

    with LoopbackServer(["hello", Reply(status=429, headers={"Retry-After": "1"}), "ok"]) as srv:
        client = OpenAIClient("m", base_url=srv.openai_url)
        ...
    srv.requests[0].json["messages"]

A script is a sequence of items answered in order, or a callable
`(Request) -> item`. An item is:

- a `Reply`, sent exactly as given (status, headers, body, delay, dropped connection);
- a `str`, the model's content, wrapped in the wire format of the request's path
  (see `FORMATS`; add a builder there for another provider);
- a `dict` or `list`, JSON-encoded and then used as content (a structured answer).

Every request is recorded in `requests`. A script that runs out, raises, or meets a
path with no wire format is recorded in `errors`; leaving the `with` block raises
them, so a test cannot pass while its server misbehaved.
"""

from __future__ import annotations

import json
import socket
import socketserver
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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

    @property
    def messages(self) -> list[dict[str, Any]]:
        body = self.json if isinstance(self.json, dict) else {}
        return list(body.get("messages") or [])

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


# Request path -> builder of a normal reply carrying some content in that wire format.
FORMATS: dict[str, Callable[[str, Request], Reply]] = {
    "/v1/chat/completions": _openai_format,
}


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
        build = FORMATS.get(request.path)
        if build is None:
            return self._fail(f"no wire format for path {request.path}")
        return build(item, request)


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
