"""Bare httpx clients for `calls.py`: N chat requests, the same bytes `icldsl run` sends
(the body's template comes from `--template`), `concurrency` workers each sending one
request at a time, every answer parsed and checked. Prints one JSON line: calls/s,
CPU microseconds per call, right answers. The clock starts before the first request,
so opening connections counts, as it does for `icldsl run`.

Variants (`--variant`):
- `one-client`: one `httpx.AsyncClient`, its default pool;
- `16-clients`: 16 AsyncClients with concurrency/16 connections each (the best in issue 13);
- `client-per-connection`: one AsyncClient of one connection per worker;
- `transports`: one `httpx.AsyncHTTPTransport` of one connection per worker, requests sent
  to it directly, without AsyncClient (what `icldsl.lm.connections` does);
- `transports-gc`: the same, with Python's garbage collector set before the clock starts
  as `icldsl run` sets it (`gc.freeze()`, a young collection every 100 objects per worker).

    python bench/overhead/httpx_clients.py --url http://127.0.0.1:8765/ms0/v1 --template t.json \
        --n 5000 --concurrency 64 --variant transports
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import ssl
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from worker import dataset  # noqa: E402

TIMEOUT = 60.0
VARIANTS = ("one-client", "16-clients", "client-per-connection", "transports", "transports-gc")


class Transport:
    """A worker's own one-connection transport, used without AsyncClient."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.transport = httpx.AsyncHTTPTransport(
            verify=context, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
        self.timeout = {"connect": TIMEOUT, "read": TIMEOUT, "write": TIMEOUT, "pool": TIMEOUT}

    async def post(self, url: str, json: dict) -> httpx.Response:
        request = httpx.Request("POST", url, json=json, extensions={"timeout": self.timeout})
        response = await self.transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


def clients(variant: str, concurrency: int) -> list:
    """The clients of a variant; worker k uses clients[k % len(clients)]."""
    if variant == "one-client":
        return [httpx.AsyncClient(timeout=TIMEOUT)]
    if variant == "16-clients":
        share = max(concurrency // 16, 1)
        return [httpx.AsyncClient(timeout=TIMEOUT, limits=httpx.Limits(max_connections=share,
                                                                       max_keepalive_connections=share))
                for _ in range(16)]
    context = httpx.create_ssl_context()  # one for all: each costs ~20 ms to make
    if variant == "client-per-connection":
        one = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        return [httpx.AsyncClient(timeout=TIMEOUT, limits=one, verify=context) for _ in range(concurrency)]
    return [Transport(context) for _ in range(concurrency)]


async def run(url: str, template: dict, n: int, concurrency: int, variant: str) -> dict:
    pool = clients(variant, concurrency)
    if variant.endswith("-gc"):  # as icldsl/cli/running.py's _collecting_less
        gc.freeze()
        young, *older = gc.get_threshold()
        gc.set_threshold(max(young, 100 * concurrency), *older)
    questions = iter(dataset(n))
    correct = 0

    async def worker(k: int) -> None:
        nonlocal correct
        client = pool[k % len(pool)]
        for question, answer in questions:
            body = {**template, "messages": [*template["messages"],
                                             {"role": "user", "content": json.dumps({"question": question})}]}
            response = await client.post(f"{url}/chat/completions", json=body)
            content = response.json()["choices"][0]["message"]["content"]
            correct += json.loads(content)["answer"] == answer

    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for client in pool:
        await client.aclose()
    return {"calls_per_s": n / wall, "cpu_us_per_call": cpu / n * 1e6, "correct": correct}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--template", type=Path, required=True,
                        help="the JSON body icldsl sends, less the last (user) message")
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--variant", choices=VARIANTS, default="transports")
    args = parser.parse_args()
    template = json.loads(args.template.read_text())
    print(json.dumps(asyncio.run(run(args.url, template, args.n, args.concurrency, args.variant))))


if __name__ == "__main__":
    main()
