"""Throughput of the in-process local model at several concurrency levels.

GSM8K-like requests, as `programs/gsm8k.icl` sends them after training: the
program's instructions and schema, three worked examples from the training
split, then a test question; temperature 0, max_tokens 200, constrained by the
output's JSON schema. Each level runs on a fresh client (loaded before the
clock starts, so no prompt cache is carried over) and is repeated.

    python bench/local_throughput.py                       # this tree's client
    python bench/local_throughput.py --baseline ddf87e2    # and the client at a git commit, in the same run
    python bench/local_throughput.py --weights q4_0 ...    # both on the model requantized to q4_0

The baseline runs one request at a time at each of `--baseline-threads`, on the
same model file as this client and with the same choice of llama.cpp's extra
buffer types (the weights it repacks for batched kernels), so that both use the
same kernels; the cells of a repetition run in an order that rotates between
repetitions, and ratios are taken within a repetition.

Prints one JSON line per run, then a summary table; `--json FILE` keeps them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from pydantic import BaseModel, Field  # noqa: E402

from icldsl.lm.base import LMRequest, Message  # noqa: E402
from icldsl.lm.local import FILE_WEIGHTS, WEIGHTS  # noqa: E402
from machine import OtherLoad, describe, wait_until_idle  # noqa: E402
from icldsl.runtime import prompt  # noqa: E402
from icldsl.runtime.state import Demo, StepState  # noqa: E402

GSM8K = ROOT.parent / "shared" / "datasets" / "gsm8k"
INSTRUCTIONS = "Solve the math word problem. Think step by step, then give the final number."


class NumericalAnswerWithThinking(BaseModel):
    thinking: str = Field(description="Your step by step thinking")
    answer: float = Field(description="The numerical answer")


def gsm8k_rows(split: str, n: int) -> list[dict[str, Any]]:
    lines = (GSM8K / f"{split}.jsonl").read_text().splitlines()[:n]
    rows = []
    for line in lines:
        row = json.loads(line)
        thinking, _, number = row["answer"].rpartition("####")
        rows.append({"question": row["question"], "thinking": thinking.strip(),
                     "answer": float(number.strip().replace(",", ""))})
    return rows


def requests(n: int, shots: int, max_tokens: int) -> list[LMRequest]:
    schema = NumericalAnswerWithThinking.model_json_schema()
    demos = tuple(
        Demo({"question": r["question"]}, {"thinking": r["thinking"], "answer": r["answer"]}, 1.0, f"train:{i}")
        for i, r in enumerate(gsm8k_rows("train", shots))
    )
    state = StepState(INSTRUCTIONS, demos)
    return [
        LMRequest(prompt.render(state, schema, {"question": r["question"]}), schema=schema,
                  schema_name="NumericalAnswerWithThinking", temperature=0.0, max_tokens=max_tokens)
        for r in gsm8k_rows("test", n)
    ]


def client_module(baseline: str | None) -> ModuleType:
    """`icldsl.lm.local` from this tree, or its source at a git commit.

    A commit's client that switches llama.cpp's extra buffer types off gets this
    tree's choice for them instead.
    """
    import icldsl.lm.local as module

    if baseline is None:
        return module
    source = subprocess.run(["git", "show", f"{baseline}:icldsl/lm/local.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    source = source.replace("params.use_extra_bufts = False",
                            f"params.use_extra_bufts = {module.extra_buffer_types()}")
    path = Path(tempfile.mkdtemp()) / f"local_{baseline}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"local_{baseline}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class DecodeTrace:
    """Time spent inside llama_decode, and the thread counts it ran with, during a run.

    Wraps `llama_decode` where the batched client (`llama_cpp`) and the old
    one-at-a-time client (llama-cpp-python's `Llama`, through
    `llama_cpp.llama_cpp`) look it up; about a microsecond per call.
    """

    def __init__(self) -> None:
        import llama_cpp
        import llama_cpp.llama_cpp

        self.modules = (llama_cpp, llama_cpp.llama_cpp)
        self.real = llama_cpp.llama_cpp.llama_decode
        self.engine: Any = None  # the batched client's engine, whose thread choice is read per call
        self.fixed_threads: int | None = None
        self.calls = self.tokens = 0
        self.seconds = 0.0
        self.threads: dict[int, int] = {}

    def __enter__(self) -> DecodeTrace:
        def decode(ctx: Any, batch: Any) -> int:
            start = time.perf_counter()
            status = self.real(ctx, batch)
            self.seconds += time.perf_counter() - start
            self.calls += 1
            self.tokens += batch.n_tokens
            threads = self.engine.threads.current if self.engine is not None else self.fixed_threads
            if threads is not None:
                self.threads[threads] = self.threads.get(threads, 0) + 1
            return status

        for module in self.modules:
            module.llama_decode = decode
        return self

    def __exit__(self, *exc: object) -> None:
        for module in self.modules:
            module.llama_decode = self.real


async def run_level(module: ModuleType, reqs: list[LMRequest], concurrency: int, options: dict) -> dict:
    options = dict(options)
    client = module.LocalClient(options.pop("model", "smollm2-135m"), **options)
    # Load the model (and warm the code paths) on an unrelated request before timing.
    await client.complete(LMRequest((Message("user", "Hi"),), temperature=0.0, max_tokens=4))
    slots = asyncio.Semaphore(concurrency)

    async def one(request: LMRequest) -> Any:
        async with slots:
            return await client.complete(request)

    with DecodeTrace() as trace:
        trace.engine = getattr(client, "_engine", None)
        llm = getattr(client, "_llm", None)  # the old client's llama_cpp.Llama
        if llm is not None:
            trace.fixed_threads = llm.n_threads
        load = OtherLoad().start()
        start = time.perf_counter()
        responses = await asyncio.gather(*(one(r) for r in reqs))
        elapsed = time.perf_counter() - start
        other = load.stop()
    await client.aclose()
    tokens = sum(r.usage.completion_tokens for r in responses)
    parsed = 0
    for r in responses:
        try:
            NumericalAnswerWithThinking.model_validate_json(r.text)
            parsed += 1
        except ValueError:
            pass
    return {
        "concurrency": concurrency, "requests": len(reqs), "seconds": round(elapsed, 3),
        "completion_tokens": tokens, "prompt_tokens": sum(r.usage.prompt_tokens for r in responses),
        "tokens_per_s": round(tokens / elapsed, 2), "requests_per_s": round(len(reqs) / elapsed, 4),
        "parsed": parsed, "other_cpu": round(other, 2),
        "decode_calls": trace.calls, "decode_tokens": trace.tokens, "decode_seconds": round(trace.seconds, 3),
        "decode_threads": {str(k): v for k, v in sorted(trace.threads.items())},
        "texts": [r.text for r in responses],
    }


def _spread(values: list[float], digits: int = 1) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def summarise(runs: list[dict]) -> str:
    """One row per client and level, medians (min-max); ratios against the best one-at-a-time client.

    The reference answers are the one-at-a-time client's when it ran (else
    this client's at its lowest concurrency). A ratio is taken within each
    repetition (runs of one repetition are minutes apart at most), then its
    median, min and max given.
    """
    cells = sorted({(r["client"], r["concurrency"]) for r in runs}, key=lambda c: (c[0] == "batched", c))
    olds = [c for c in cells if c[0].startswith("one at a time")]
    ref_cell = olds[0] if olds else cells[0]
    reference = next(r["texts"] for r in runs if (r["client"], r["concurrency"]) == ref_cell)
    best_old = None
    if olds:
        best_old = max(olds, key=lambda c: statistics.median(r["tokens_per_s"] for r in runs
                                                                if (r["client"], r["concurrency"]) == c))
    lines = ["| client | concurrency | completion tok/s | requests/s | x best one-at-a-time (same repetition) "
             "| answers equal to the reference | in llama_decode | decode threads | other CPU (max) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for cell in cells:
        mine = [r for r in runs if (r["client"], r["concurrency"]) == cell]
        ratio = "-"
        if best_old is not None and cell != best_old:
            per_rep = []
            for r in mine:
                base = [b for b in runs if (b["client"], b["concurrency"]) == best_old and b["rep"] == r["rep"]]
                if base:
                    per_rep.append(r["tokens_per_s"] / base[0]["tokens_per_s"])
            ratio = _spread(per_rep, 2) if per_rep else "-"
        same = min(sum(a == b for a, b in zip(r["texts"], reference)) for r in mine)
        in_decode = [r["decode_seconds"] / r["seconds"] for r in mine]
        threads: dict[str, int] = {}
        for r in mine:
            for k, v in r["decode_threads"].items():
                threads[k] = threads.get(k, 0) + v
        total = sum(threads.values()) or 1
        thread_text = ", ".join(f"{k}: {100 * v / total:.0f}%" for k, v in sorted(threads.items()))
        lines.append(f"| {cell[0]}{' (best)' if cell == best_old else ''} | {cell[1]} "
                     f"| {_spread([r['tokens_per_s'] for r in mine])} "
                     f"| {_spread([r['requests_per_s'] for r in mine], 3)} | {ratio} "
                     f"| {same}/{mine[0]['requests']} | {100 * statistics.median(in_decode):.0f}% | {thread_text} "
                     f"| {max(r['other_cpu'] for r in mine):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 4, 8],
                        help="levels for this tree's client (none: measure only the baseline)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-threads", type=int, help="llama.cpp threads (default: the client's)")
    parser.add_argument("--n-parallel", type=int, help="sequences decoded together (default: the client's)")
    parser.add_argument("--weights", default=FILE_WEIGHTS, choices=[FILE_WEIGHTS, *WEIGHTS],
                        help="the bundled model's weights: the file's own (Q4_1), or requantized")
    parser.add_argument("--idle", type=float, default=0.15,
                        help="before each run, wait until other processes use under this many CPUs")
    parser.add_argument("--max-wait", type=float, default=120,
                        help="seconds to wait for --idle before running anyway")
    parser.add_argument("--baseline", metavar="COMMIT",
                        help="also measure icldsl/lm/local.py as of this git commit, one request at a time, "
                             "in the same run")
    parser.add_argument("--baseline-threads", type=int, nargs="+", default=[1, os.cpu_count() or 1],
                        help="n_threads values the baseline client is measured with (each a separate row)")
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()

    reqs = requests(args.requests, args.shots, args.max_tokens)
    options: dict[str, Any] = {"n_ctx": args.n_ctx}
    for name in ("n_threads", "n_parallel"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    # Every cell of a repetition: (client label, module, concurrency, options).
    new = client_module(None)
    model_file = new.resolve_model("smollm2-135m")
    if args.weights != FILE_WEIGHTS:
        options["weights"] = args.weights
        model_file = new.requantized(model_file, args.weights)
    cells = [("batched", new, level, options) for level in args.concurrency]
    if args.baseline:
        old = client_module(args.baseline)
        cells = [(f"one at a time, n_threads {t}", old, 1,
                  {"model": str(model_file), "n_ctx": args.n_ctx, "n_threads": t})
                 for t in args.baseline_threads] + cells
    setup = {"machine": describe(), "options": options, "model_file": model_file.name,
             "extra_buffer_types": new.extra_buffer_types()}
    print(json.dumps(setup), flush=True)
    runs = []
    for rep in range(args.repeat):
        shift = rep % len(cells)  # rotate the order, so that no cell always runs first or last
        for label, module, level, opts in cells[shift:] + cells[:shift]:
            wait_until_idle(args.idle, max_wait=args.max_wait)
            run = {"client": label, "rep": rep, **asyncio.run(run_level(module, reqs, level, opts))}
            runs.append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "texts"}), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "setup": setup,
                                          "runs": runs}, indent=1))
    print(summarise(runs))


if __name__ == "__main__":
    main()
