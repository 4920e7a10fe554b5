"""How many completions the benchmark server serves alone: raw keep-alive HTTP/1.1
clients on `concurrency` connections, each sending a typical request body.

    python bench/overhead/loadgen.py --url http://127.0.0.1:8765/ms0/v1 --n 20000 --concurrency 64
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

BODY = json.dumps({
    "model": "bench",
    "messages": [
        {"role": "system", "content": "Answer the question. " * 40},
        {"role": "user", "content": json.dumps({"question": "What is 20 + 22?"})},
    ],
    "temperature": 0,
}).encode()


async def client(host: str, port: int, path: str, count: int) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    request = (f"POST {path}/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
               f"Content-Length: {len(BODY)}\r\n\r\n").encode() + BODY
    for _ in range(count):
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
        body = await reader.readexactly(length)
        assert b'42' in body, body
    writer.close()


async def run(url: str, n: int, concurrency: int) -> float:
    parts = urlsplit(url)
    start = time.perf_counter()
    await asyncio.gather(*(client(parts.hostname, parts.port, parts.path.rstrip("/"), n // concurrency)
                           for _ in range(concurrency)))
    return (n // concurrency * concurrency) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps({"served_per_s": round(asyncio.run(run(args.url, args.n, args.concurrency)), 1)}))


if __name__ == "__main__":
    main()
