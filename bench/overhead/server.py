"""A loopback OpenAI-compatible chat-completions server for the overhead benchmark.

It answers every `POST .../chat/completions` with the sum asked for by the last
"What is A + B?" in the request, after a delay chosen by the path: a base URL
of `http://127.0.0.1:PORT/ms50/v1` answers after 50 ms, `/ms0/v1` at once. The
answer's form follows the request: DSPy's `[[ ## answer ## ]]` fields when the
prompt uses them, else the JSON object `{"answer": "..."}`. `GET /stats` gives
the number of completions served since the last `POST /reset`.

A bare asyncio protocol (HTTP/1.1 keep-alive, one small JSON parse per request)
so that the server costs the clients as little CPU as possible; `loadgen.py`
measures what it serves alone.

    python bench/overhead/server.py --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

QUESTION = re.compile(rb"What is (\d+) \+ (\d+)\?")
DSPY_FIELD = b"[[ ## answer ## ]]"


class State:
    served = 0


def completion(body: bytes) -> bytes:
    """The chat-completion response to one request body."""
    found = QUESTION.findall(body)
    answer = str(int(found[-1][0]) + int(found[-1][1])) if found else "unknown"
    if DSPY_FIELD in body:
        content = f"[[ ## answer ## ]]\n{answer}\n\n[[ ## completed ## ]]"
    else:
        content = json.dumps({"answer": answer})
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": int(time.time()), "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": len(body) // 4, "completion_tokens": 8, "total_tokens": len(body) // 4 + 8},
    }).encode()


class Http(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1")
            length = 0
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4 : end + 4 + length]
            self.buffer = self.buffer[end + 4 + length :]
            self.handle(head.split("\r\n", 1)[0], body)

    def handle(self, request_line: str, body: bytes) -> None:
        method, path, _ = request_line.split(" ", 2)
        if method == "GET" and path == "/stats":
            return self.send(200, json.dumps({"served": State.served}).encode())
        if method == "POST" and path == "/reset":
            State.served = 0
            return self.send(200, b"{}")
        if method == "POST" and path.endswith("/chat/completions"):
            match = re.match(r"/ms(\d+)/", path)
            delay = int(match.group(1)) / 1000 if match else 0.0
            payload = completion(body)
            State.served += 1
            if delay:
                self.loop.call_later(delay, self.send, 200, payload)
            else:
                self.send(200, payload)
            return None
        return self.send(404, b'{"error": {"message": "not found"}}')

    def send(self, status: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        reason = "OK" if status == 200 else "Not Found"
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(Http, "127.0.0.1", port, backlog=1024)
    print(f"listening on 127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
