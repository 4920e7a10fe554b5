"""An OpenAI-compatible chat-completions server on 127.0.0.1 for the bundled local model.

It serves `local/smollm2-135m` (or any model `icldsl.lm.local` loads) through
icldsl's own in-process client, `icldsl.lm.local.LocalClient`: concurrent
requests are decoded together (up to `--n-parallel`), and an answer is
constrained by a grammar when the request asks for structure:

- `response_format: {"type": "json_schema", "json_schema": {"schema": ...}}`:
  the answer follows that JSON schema (as icldsl's own local provider does it,
  string fields bounded so that the object closes within `max_tokens`);
- `response_format: {"type": "json_object"}` (JSON mode): the answer is some JSON
  object (the schema `{"type": "object"}`);
- anything else: plain completion, no grammar.

`temperature` (default 0.2 when absent, as the local client does), `max_tokens`
(or `max_completion_tokens`) and `seed` are honoured; `stop`, `n` > 1 and
streaming are not (a request with `stream: true` or `n` > 1 is refused with 400).
The response carries `usage` (prompt and completion tokens, from the model's
own tokenizer) and `finish_reason` "length" when the answer hit `max_tokens`.

Every request is counted by the server, per tag: a base URL of
`http://127.0.0.1:PORT/<tag>/v1` counts under `<tag>` (so each benchmarked
tool gets its own figures from the same counter). `GET /stats` gives the
counts of every tag, `POST /reset` zeroes them. `GET /<tag>/v1/models` lists the
model, for clients that look.

    python bench/training/serve.py --port 8766
    # prints "listening on 127.0.0.1:PORT model smollm2-135m" once the model is loaded
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

# run.py --icldsl-ref REF points ICLDSL_BENCH_SOURCE at a snapshot of icldsl at REF
sys.path.insert(0, os.environ.get("ICLDSL_BENCH_SOURCE") or str(Path(__file__).resolve().parents[2]))

from icldsl.lm.base import LMConfigError, LMError, LMRequest, Message  # noqa: E402
from icldsl.lm.local import LocalClient  # noqa: E402

ROLES = {"system", "user", "assistant"}
JSON_OBJECT = {"type": "object"}
MAX_BODY = 16 * 1024 * 1024


class BadRequest(Exception):
    """A request the server refuses with 400."""


def _counter() -> dict[str, float]:
    return {"calls": 0, "errors": 0, "prompt_tokens": 0, "completion_tokens": 0, "cut_at_max_tokens": 0,
            "json_schema": 0, "json_object": 0, "plain": 0, "seconds": 0.0, "max_in_flight": 0, "in_flight": 0}


class Stats:
    def __init__(self) -> None:
        self.by_tag: dict[str, dict[str, float]] = defaultdict(_counter)
        # Every request per tag: [start (time.time()), seconds, prompt tokens, completion tokens, kind, status].
        self.log: dict[str, list[list[Any]]] = defaultdict(list)
        self.served = 0

    def to_json(self) -> dict[str, Any]:
        return {tag: {k: (round(v, 3) if isinstance(v, float) else v) for k, v in c.items() if k != "in_flight"}
                for tag, c in self.by_tag.items()}


def _text(content: Any) -> str:
    """A message's content: a string, or OpenAI's list of parts (only text parts are accepted)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        pieces = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                pieces.append(part["text"])
            else:
                raise BadRequest("only text content parts are supported")
        return "".join(pieces)
    raise BadRequest("message content must be a string or a list of text parts")


def parse_request(body: dict[str, Any]) -> tuple[LMRequest, str]:
    """The request as the local client takes it, and its kind: json_schema, json_object or plain."""
    if body.get("stream"):
        raise BadRequest("streaming is not supported")
    if body.get("n", 1) not in (1, None):
        raise BadRequest("n > 1 is not supported")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise BadRequest("messages must be a non-empty list")
    messages = []
    for m in raw:
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise BadRequest(f"unsupported message role: {m.get('role') if isinstance(m, dict) else m!r}")
        messages.append(Message(m["role"], _text(m.get("content"))))
    schema, kind, name = None, "plain", "output"
    response_format = body.get("response_format")
    if isinstance(response_format, dict):
        rtype = response_format.get("type")
        if rtype == "json_schema":
            spec = response_format.get("json_schema") or {}
            schema = spec.get("schema")
            if not isinstance(schema, dict):
                raise BadRequest("response_format.json_schema.schema must be an object")
            kind, name = "json_schema", str(spec.get("name") or "output")
        elif rtype == "json_object":
            schema, kind = JSON_OBJECT, "json_object"
        elif rtype not in (None, "text"):
            raise BadRequest(f"unsupported response_format type {rtype!r}")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    temperature = body.get("temperature")
    seed = body.get("seed")
    return LMRequest(
        messages=tuple(messages), schema=schema, schema_name=name,
        temperature=None if temperature is None else float(temperature),
        max_tokens=None if max_tokens is None else int(max_tokens),
        seed=None if seed is None else int(seed),
    ), kind


class Server:
    def __init__(self, client: LocalClient, model: str) -> None:
        self.client = client
        self.model = model
        self.stats = Stats()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0") or 0)
                if length > MAX_BODY:
                    await self.send(writer, 413, {"error": {"message": "request too large"}})
                    return
                body = await reader.readexactly(length) if length else b""
                status, payload = await self.route(method, path, body)
                await self.send(writer, status, payload)
                if headers.get("connection", "").lower() == "close":
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def route(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        path = path.split("?", 1)[0]
        if method == "GET" and path == "/stats":
            return 200, self.stats.to_json()
        if method == "GET" and path == "/log":
            return 200, dict(self.stats.log)
        if method == "POST" and path == "/reset":
            self.stats.by_tag.clear()
            self.stats.log.clear()
            return 200, {}
        if method == "GET" and path.endswith("/models"):
            return 200, {"object": "list", "data": [{"id": self.model, "object": "model", "owned_by": "local"}]}
        if method == "POST" and path.endswith("/chat/completions"):
            parts = [p for p in path.split("/") if p]
            tag = parts[0] if len(parts) > 3 else "default"  # /<tag>/v1/chat/completions
            return await self.complete(tag, body)
        return 404, {"error": {"message": f"no route for {method} {path}"}}

    async def complete(self, tag: str, body: bytes) -> tuple[int, dict[str, Any]]:
        counter = self.stats.by_tag[tag]
        entry: list[Any] = [time.time(), 0.0, 0, 0, "?", 500]
        self.stats.log[tag].append(entry)
        self.stats.served += 1
        counter["calls"] += 1
        counter["in_flight"] += 1
        counter["max_in_flight"] = max(counter["max_in_flight"], counter["in_flight"])
        start = time.perf_counter()
        try:
            try:
                request, kind = parse_request(json.loads(body))
            except (BadRequest, ValueError, TypeError) as exc:
                counter["errors"] += 1
                entry[5] = 400
                return 400, {"error": {"message": str(exc), "type": "invalid_request_error"}}
            counter[kind] += 1
            entry[4] = kind
            try:
                response = await self.client.complete(request)
            except LMConfigError as exc:  # a schema the grammar converter cannot take
                counter["errors"] += 1
                entry[5] = 400
                return 400, {"error": {"message": str(exc), "type": "invalid_request_error"}}
            except LMError as exc:
                counter["errors"] += 1
                return 500, {"error": {"message": str(exc), "type": "server_error"}}
            usage = response.usage
            counter["prompt_tokens"] += usage.prompt_tokens
            counter["completion_tokens"] += usage.completion_tokens
            cut = request.max_tokens is not None and usage.completion_tokens >= request.max_tokens
            counter["cut_at_max_tokens"] += int(cut)
            entry[2:4], entry[5] = [usage.prompt_tokens, usage.completion_tokens], 200
            return 200, {
                "id": f"chatcmpl-{self.stats.served}", "object": "chat.completion", "created": int(time.time()),
                "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": response.text},
                             "finish_reason": "length" if cut else "stop"}],
                "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                          "total_tokens": usage.prompt_tokens + usage.completion_tokens},
            }
        finally:
            counter["in_flight"] -= 1
            entry[1] = round(time.perf_counter() - start, 4)
            counter["seconds"] += entry[1]

    @staticmethod
    async def send(writer: asyncio.StreamWriter, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 413: "Payload Too Large"}.get(status, "Error")
        writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
        await writer.drain()


async def serve(args: argparse.Namespace) -> None:
    client = LocalClient(args.model, n_ctx=args.n_ctx, n_parallel=args.n_parallel, n_threads=args.n_threads)
    # Load the model before announcing the port, so no client's first call pays for it.
    await client.complete(LMRequest(messages=(Message("user", "Hi"),), temperature=0.0, max_tokens=1))
    server = Server(client, args.model)
    listener = await asyncio.start_server(server.handle, "127.0.0.1", args.port, limit=MAX_BODY, backlog=1024)
    print(f"listening on 127.0.0.1:{listener.sockets[0].getsockname()[1]} model {args.model}", flush=True)
    try:
        async with listener:
            await listener.serve_forever()
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--model", default="smollm2-135m", help="a bundled model name or a .gguf path")
    parser.add_argument("--n-ctx", type=int, default=4096, help="context window of each request")
    parser.add_argument("--n-parallel", type=int, default=8, help="requests decoded together")
    parser.add_argument("--n-threads", type=int, default=None, help="fixed llama.cpp threads (default: follow free CPUs)")
    try:
        asyncio.run(serve(parser.parse_args()))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
