"""Throughput of the in-process local model at several concurrency levels.

GSM8K-like requests, as `programs/gsm8k.icl` sends them after training: the
program's instructions and schema, three worked examples from the training
split, then a test question; temperature 0, max_tokens 200, constrained by the
output's JSON schema. Each level runs on a fresh client (loaded before the
clock starts, so no prompt cache is carried over) and is repeated.

    python bench/local_throughput.py                       # this tree's client
    python bench/local_throughput.py --baseline ddf87e2    # the client at a git commit

Prints one JSON line per run, then a summary table; `--json FILE` keeps them.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
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
    """`icldsl.lm.local` from this tree, or its source at a git commit."""
    if baseline is None:
        import icldsl.lm.local as module

        return module
    source = subprocess.run(["git", "show", f"{baseline}:icldsl/lm/local.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"local_{baseline}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"local_{baseline}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def run_level(module: ModuleType, reqs: list[LMRequest], concurrency: int, options: dict) -> dict:
    options = dict(options)
    client = module.LocalClient(options.pop("model", "smollm2-135m"), **options)
    # Load the model (and warm the code paths) on an unrelated request before timing.
    await client.complete(LMRequest((Message("user", "Hi"),), temperature=0.0, max_tokens=4))
    slots = asyncio.Semaphore(concurrency)

    async def one(request: LMRequest) -> Any:
        async with slots:
            return await client.complete(request)

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
        "parsed": parsed, "other_cpu": round(other, 2), "texts": [r.text for r in responses],
    }


def summarise(runs: list[dict]) -> str:
    lines = ["| concurrency | completion tok/s median (min-max) | requests/s median (min-max) "
             "| answers equal to c=1 | other processes' CPU (max) |",
             "|---|---|---|---|---|"]
    reference = next((r["texts"] for r in runs if r["concurrency"] == min(x["concurrency"] for x in runs)), None)
    for level in sorted({r["concurrency"] for r in runs}):
        mine = [r for r in runs if r["concurrency"] == level]
        tps = [r["tokens_per_s"] for r in mine]
        rps = [r["requests_per_s"] for r in mine]
        same = min(sum(a == b for a, b in zip(r["texts"], reference or [])) for r in mine)
        lines.append(f"| {level} | {statistics.median(tps):.1f} ({min(tps):.1f}-{max(tps):.1f}) "
                     f"| {statistics.median(rps):.3f} ({min(rps):.3f}-{max(rps):.3f}) "
                     f"| {same}/{mine[0]['requests']} | {max(r['other_cpu'] for r in mine):.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--shots", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--n-threads", type=int, help="llama.cpp threads (default: the client's)")
    parser.add_argument("--n-parallel", type=int, help="sequences decoded together (default: the client's)")
    parser.add_argument("--idle", type=float, default=0.15,
                        help="before each run, wait until other processes use under this many CPUs")
    parser.add_argument("--baseline", metavar="COMMIT", help="measure icldsl/lm/local.py as of this git commit")
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()

    module = client_module(args.baseline)
    reqs = requests(args.requests, args.shots, args.max_tokens)
    runs = []
    options = {"n_ctx": args.n_ctx}
    for name in ("n_threads", "n_parallel"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    print(json.dumps({"machine": describe(), "options": options}), flush=True)
    for _ in range(args.repeat):
        for level in args.concurrency:
            wait_until_idle(args.idle, max_wait=120)
            run = asyncio.run(run_level(module, reqs, level, options))
            runs.append(run)
            print(json.dumps({k: v for k, v in run.items() if k != "texts"}), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}, indent=1))
    print(summarise(runs))


if __name__ == "__main__":
    main()
