"""Hundreds of calls in flight: `icldsl run` over a file of N rows against bare httpx
clients sending the same N requests, to the same loopback server (server.py, its own
process), in one run, interleaved.

For each server latency (instant, 50 ms) and concurrency (64, 256), every runner does N
calls, in an order that rotates between repetitions:
- `icldsl run ARTIFACT --input rows.jsonl --output preds.jsonl --concurrency C` with the
  LM cache off (`--no-cache`) and on (a fresh, empty cache: every answer is written);
  its rate is the one it reports, from its first row read to its last line written;
- the bare clients of `httpx_clients.py`, sending the bytes icldsl sends.
Every run is checked: N calls reached the server and N answers were right. Reported:
calls/s (median, min-max) and, per repetition, icldsl's rate over the best bare client's.

    python bench/overhead/calls.py --n 5000 --repeat 3 --json bench/results/calls.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from machine import describe  # noqa: E402
from overhead import interleaved, start_server  # noqa: E402
from worker import dataset  # noqa: E402

from icldsl import artifact  # noqa: E402
from icldsl.language.compiler import compile_source  # noqa: E402
from icldsl.lm.openai import OpenAIClient  # noqa: E402
from icldsl.runtime.program import Program  # noqa: E402
from icldsl.language.source import Source  # noqa: E402
from icldsl.runtime.state import spec_and_states  # noqa: E402

SOURCE = """
model Question {{ question: str "The question" }}
model Answer {{ answer: str "The answer" }}
lm bench = "openai/bench" {{ base_url: {base_url}{options} }}
program qa "Answers questions" {{
    input  q: Question
    answer = generate Answer from q instructions "Answer the question."
    output answer
}}
"""
BARE = ("one-client", "16-clients", "client-per-connection", "transports", "transports-gc")
ICLDSL = ("icldsl run --no-cache", "icldsl run")


def write_artifact(path: Path, base_url: str | list[str], options: str = ", max_retries: 0") -> Program:
    """The one-step program at `base_url` (one or several), frozen; `options` follow it in the lm block."""
    source = Source("qa.icl", SOURCE.format(base_url=json.dumps(base_url), options=options))
    spec, states = spec_and_states(compile_source(source), "qa")
    program = Program(spec, states)
    artifact.write(path, artifact.freeze(program, source_file="qa.icl", source_sha256=source.sha256, training={}))
    return program


class Recorder:
    """An LM client that keeps the request it is sent and answers nothing useful."""

    name = "openai/bench"

    def __init__(self) -> None:
        self.requests: list = []

    async def complete(self, request):
        from icldsl.lm.base import LMResponse

        self.requests.append(request)
        return LMResponse('{"answer": "0"}')

    async def aclose(self) -> None:
        pass


def template(program: Program) -> dict:
    """The body icldsl sends for a question, less its last (user) message."""
    recorder = Recorder()
    Program(program.spec, program.states, {"bench": recorder})(question="What is 1 + 7?")
    body = OpenAIClient("bench", base_url="http://127.0.0.1:1/v1")._payload(recorder.requests[0])
    assert json.loads(body["messages"][-1]["content"]) == {"question": "What is 1 + 7?"}
    return {**body, "messages": body["messages"][:-1]}


def run_icldsl(runner: str, folder: Path, latency: int, concurrency: int, n: int) -> dict:
    out = folder / "preds.jsonl"
    out.unlink(missing_ok=True)
    cache = tempfile.mkdtemp(prefix="calls-cache-", dir=folder)
    command = [sys.executable, "-m", "icldsl", "run", str(folder / f"ms{latency}.artifact.json"), "--input",
               str(folder / "rows.jsonl"), "--output", str(out), "--concurrency", str(concurrency), "-q"]
    if runner.endswith("--no-cache"):
        command.append("--no-cache")
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, "ICLDSL_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)})
    found = re.search(r"ran (\d+) rows in \S+ \((\d+) rows/s\)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{runner} failed:\n{done.stderr}")
    answers = dict(dataset(n))
    questions = [q for q, _ in dataset(n)]
    correct = sum(json.loads(line)["output"]["answer"] == answers[questions[json.loads(line)["row"] - 1]]
                  for line in out.read_text().splitlines())
    return {"calls_per_s": float(found.group(2)), "correct": correct}


def run_bare(variant: str, folder: Path, port: int, latency: int, concurrency: int, n: int) -> dict:
    done = subprocess.run([sys.executable, str(HERE / "httpx_clients.py"), "--url",
                           f"http://127.0.0.1:{port}/ms{latency}/v1", "--template", str(folder / "template.json"),
                           "--n", str(n), "--concurrency", str(concurrency), "--variant", variant],
                          capture_output=True, text=True, timeout=600, check=True)
    return json.loads(done.stdout)


def table(runs: list[dict]) -> str:
    lines = ["| server | concurrency | " + " | ".join(f"{r} calls/s" for r in (*ICLDSL, *BARE))
             + " | " + " | ".join(f"{r} / best bare" for r in ICLDSL) + " |",
             "|---" * (4 + len(ICLDSL) + len(BARE)) + "|"]
    for latency, concurrency in sorted({(r["latency_ms"], r["concurrency"]) for r in runs}):
        cell = [r for r in runs if (r["latency_ms"], r["concurrency"]) == (latency, concurrency)]
        row = [f"{'instant' if latency == 0 else f'{latency} ms'}", str(concurrency)]
        for runner in (*ICLDSL, *BARE):
            rates = [r["calls_per_s"] for r in cell if r["runner"] == runner]
            row.append(f"{statistics.median(rates):.0f} ({min(rates):.0f}-{max(rates):.0f})" if rates else "-")
        for runner in ICLDSL:
            ratios = []
            for rep in sorted({r["rep"] for r in cell}):
                mine = [r["calls_per_s"] for r in cell if r["rep"] == rep and r["runner"] == runner]
                bare = [r["calls_per_s"] for r in cell if r["rep"] == rep and r["runner"] in BARE]
                if mine and bare:
                    ratios.append(mine[0] / max(bare))
            row.append(f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})" if ratios else "-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=int, nargs="+", default=[0, 50], help="server latencies in ms")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--runners", nargs="+", default=[*ICLDSL, *BARE], choices=[*ICLDSL, *BARE])
    parser.add_argument("--idle", type=float, default=0.25,
                        help="before each run, wait (up to 60 s) until other processes use under this many CPUs "
                             "(0: do not wait)")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()

    server, port = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            (folder / "rows.jsonl").write_text("".join(json.dumps({"question": q}) + "\n" for q, _ in dataset(args.n)))
            for latency in args.latency:
                program = write_artifact(folder / f"ms{latency}.artifact.json",
                                         f"http://127.0.0.1:{port}/ms{latency}/v1")
            (folder / "template.json").write_text(json.dumps(template(program)))
            runs = interleaved(
                args, args.runners, "runner", port, [server],
                lambda name, latency, concurrency: run_icldsl(name, folder, latency, concurrency, args.n)
                if name in ICLDSL else run_bare(name, folder, port, latency, concurrency, args.n))
        if args.json:
            args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": describe(),
                                             "args": {k: str(v) for k, v in vars(args).items()}, "runs": runs},
                                            indent=1))
        print(table(runs))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
