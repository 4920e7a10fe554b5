"""Parse failures of the bundled local model on GSM8K, with and without the grammar.

Runs the GSM8K program's step (programs/gsm8k.icl, untrained) through the
runtime's own `generate` on N test questions, once with the JSON schema sent
(llama.cpp constrains the answer with a grammar) and once with `schema=None`
(free text, read by the lenient reader). For each answer it records whether it
was strict JSON, whether the lenient reader found an object, whether that
validated, whether the step succeeded after its one retry, and whether the
number was right.

    python bench/parse_failures.py --n 200 --out bench/results/parse_failures.json

Needs the `local` extra. `ICLDSL_GSM8K_PATH` (default ../shared/datasets/gsm8k)
holds test.jsonl.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from icldsl.language.compiler import compile_file  # noqa: E402
from icldsl.lm import make_client  # noqa: E402
from icldsl.lm.base import LMClient, LMRequest, LMResponse  # noqa: E402
from icldsl.lm.connect import Connection, resolve_options  # noqa: E402
from icldsl.lm.repair import RepairError, read_object  # noqa: E402
from icldsl.lm.trace import Site  # noqa: E402
from icldsl.runtime.generate import StepFailure, generate  # noqa: E402
from icldsl.runtime.models import build_models  # noqa: E402
from icldsl.runtime.request import step_request  # noqa: E402
from icldsl.runtime.state import spec_and_states  # noqa: E402


class Recorder:
    """Passes requests to `inner` (without the schema when `constrained` is False)
    and keeps every answer's text."""

    def __init__(self, inner: LMClient, constrained: bool) -> None:
        self.inner, self.constrained = inner, constrained
        self.name = inner.name
        self.texts: list[str] = []

    async def complete(self, request: LMRequest) -> LMResponse:
        if not self.constrained:
            request = dataclasses.replace(request, schema=None)
        response = await self.inner.complete(request)
        self.texts.append(response.text)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def load_questions(n: int) -> list[tuple[str, float]]:
    path = Path(os.environ.get("ICLDSL_GSM8K_PATH", ROOT.parent / "shared" / "datasets" / "gsm8k")) / "test.jsonl"
    rows = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            rows.append((row["question"], float(row["answer"].split("####")[-1].strip().replace(",", ""))))
            if len(rows) == n:
                break
    return rows


def first_answer(text: str, model: Any) -> dict[str, bool]:
    """How far the first answer gets: strict JSON, lenient object, valid model."""
    try:
        json.loads(text)
        strict = True
    except json.JSONDecodeError:
        strict = False
    try:
        obj = read_object(text)
    except RepairError:
        return {"strict_json": strict, "object": False, "valid": False}
    try:
        model.model_validate(obj)
    except ValidationError:
        return {"strict_json": strict, "object": True, "valid": False}
    return {"strict_json": strict, "object": True, "valid": True}


async def run_mode(constrained: bool, questions: list[tuple[str, float]], program: Path,
                   concurrency: int) -> dict[str, Any]:
    compiled = compile_file(program)
    spec, states = spec_and_states(compiled, next(iter(compiled.programs)))
    step = spec.steps[0]
    lm = next(lm for lm in spec.lms if lm.name == step.lm)
    models = build_models(spec.models)
    model = models[step.answer_model]
    inner = make_client(lm.target, resolve_options(lm.options))
    limit = asyncio.Semaphore(concurrency)
    rows: list[dict[str, Any]] = [{} for _ in questions]

    async def one(i: int, question: str, gold: float) -> None:
        recorder = Recorder(inner, constrained)
        async with limit:
            try:
                first = step_request(step, states[step.path], {"question": question}, model, lm, {})
                out, _ = await generate(first, Connection(lm.name, recorder, ()).at(Site(step.path, spec.name)))
                ok, correct, error = True, abs(float(out["answer"]) - gold) < 1e-6, None
            except StepFailure as failure:
                ok, correct, error = False, False, str(failure)[:200]
        rows[i] = {**first_answer(recorder.texts[0], model), "calls": len(recorder.texts), "final_ok": ok,
                   "correct": correct, "error": error, "first_text": recorder.texts[0][:300]}

    start = time.monotonic()
    try:
        await asyncio.gather(*(one(i, q, g) for i, (q, g) in enumerate(questions)))
    finally:
        await inner.aclose()
    n = len(rows)

    def rate(key: str, want: bool = False) -> float:
        return sum(r[key] == want for r in rows) / n

    return {
        "mode": "constrained" if constrained else "unconstrained",
        "n": n,
        "lm": lm.target,
        "options": dict(lm.options),
        "seconds": round(time.monotonic() - start, 1),
        "first_answer_not_strict_json": rate("strict_json"),
        "first_answer_no_object_even_lenient": rate("object"),
        "first_answer_not_valid": rate("valid"),
        "failed_after_one_retry": rate("final_ok"),
        "retries": sum(r["calls"] - 1 for r in rows),
        "accuracy": rate("correct", True),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200, help="GSM8K test questions (the first N)")
    parser.add_argument("--modes", default="constrained,unconstrained")
    parser.add_argument("--program", type=Path, default=ROOT / "programs" / "gsm8k.icl")
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight (the local client batches them)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "parse_failures.json")
    args = parser.parse_args(argv)
    questions = load_questions(args.n)
    results = []
    for mode in args.modes.split(","):
        result = asyncio.run(run_mode(mode == "constrained", questions, args.program, args.concurrency))
        results.append(result)
        print(f"{result['mode']:>13}: n={result['n']}  not strict JSON {result['first_answer_not_strict_json']:.1%}  "
              f"no object {result['first_answer_no_object_even_lenient']:.1%}  "
              f"invalid {result['first_answer_not_valid']:.1%}  "
              f"failed after retry {result['failed_after_one_retry']:.1%}  "
              f"accuracy {result['accuracy']:.1%}  ({result['seconds']} s)", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": "python bench/parse_failures.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    args.out.write_text(json.dumps({**meta, "results": results}, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
