"""Diagnostics latency of the language server: the time from sending a change of a
generated 2,000-line program to receiving its diagnostics, over stdio with a real client.

    python bench/lsp_latency.py [--lines 2000] [--edits 30]

Each edit types one character into a field description at a spread of places (top, middle,
end of the file), waiting for that version's diagnostics before the next; a second series
alternates a mistake (an unknown type, so the diagnostics change) and its fix. Prints the
median, p90 and max, and the time to the first diagnostics after opening the file.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lsprotocol import types as lsp  # noqa: E402

from tests.lsp_client import language_server  # noqa: E402
from tests.program_generator import generate_program, write_data  # noqa: E402


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    return (f"median {statistics.median(ms):.1f} ms, p90 {ms[int(len(ms) * 0.9)]:.1f} ms, max {ms[-1]:.1f} ms "
            f"over {len(ms)} changes")


async def measure(lines: int, edits: int) -> None:
    text = generate_program(lines)
    rows = [i for i, line in enumerate(text.splitlines()) if "The input text" in line]
    with tempfile.TemporaryDirectory() as folder:
        write_data(Path(folder))
        async with language_server(Path(folder)) as s:
            started = time.perf_counter()
            uri = s.open(Path(folder) / "bench.icl", text)
            await s.diagnostics(uri, 1, timeout=300)
            print(f"{text.count(chr(10))} lines, {len(text):,} characters")
            print(f"open: first diagnostics after {(time.perf_counter() - started) * 1000:.0f} ms")
            typed = []
            for i in range(edits):
                row = rows[(i * 7919) % len(rows)]
                column = len(text.splitlines()[row]) - 1  # inside the description's closing quote
                started = time.perf_counter()
                version = s.edit(uri, lsp.Position(row, column), lsp.Position(row, column), "x")
                await s.diagnostics(uri, version)
                typed.append(time.perf_counter() - started)
            print(f"typing a character: {summary(typed)}")
            mistakes = []
            row = rows[len(rows) // 2]
            start = text.splitlines()[row].index("str(")
            for i in range(edits):
                before, after = ("str", "strr") if i % 2 == 0 else ("strr", "str")
                started = time.perf_counter()
                version = s.edit(uri, lsp.Position(row, start), lsp.Position(row, start + len(before)), after)
                found = await s.diagnostics(uri, version)
                mistakes.append(time.perf_counter() - started)
                assert bool(found) == (i % 2 == 0)
            print(f"a mistake, then its fix: {summary(mistakes)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--edits", type=int, default=30)
    args = parser.parse_args()
    asyncio.run(measure(args.lines, args.edits))


if __name__ == "__main__":
    main()
