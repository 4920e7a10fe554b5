"""What retrieved examples cost per call, and what a pool costs in the artifact.

A pool of N CLINC150 training queries (N = 1,000 and 10,000 by default) becomes the
state of a one-step intent classifier. For each test query we time, in the same loop,
`Retrieval.select` (BM25 over the pool: the work retrieval adds to a call) and
`prompt.render` of the step's messages with the k examples it returned (work every
call does anyway), so the ratio of the two is a reading the machine's load cannot
skew much. With --dense, the same with random 384-dimensional vectors (MiniLM's size)
in place of embeddings (the query's vector given, so only the search is timed).
The artifact of each pool is frozen and its size reported.

    python bench/retrieval_speed.py [--pools 1000 10000] [--queries 1000] [--k 8] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import describe  # noqa: E402
from icldsl.artifact import canonical, freeze  # noqa: E402
from icldsl.language.compiler import compile_source  # noqa: E402
from icldsl.runtime import prompt  # noqa: E402
from icldsl.runtime.demo import Demo  # noqa: E402
from icldsl.runtime.models import json_schema  # noqa: E402
from icldsl.runtime.program import Program  # noqa: E402
from icldsl.runtime.retrieval import BM25, Dense, Pool, Retrieval  # noqa: E402
from icldsl.language.specs import EmbeddingSpec  # noqa: E402
from icldsl.language.source import Source  # noqa: E402
from icldsl.runtime.state import spec_and_states  # noqa: E402

DATA = Path(os.environ.get("ICLDSL_CLINC150_PATH") or ROOT.parent / "shared" / "datasets" / "clinc150") / "data_full.json"
SOURCE = """
model M { query: str "A message" }
model I { intent: str "What it asks for" }
lm small = "local/smollm2-135m"
program p { input m: M  i = generate I from m  output i }
"""


async def _no_embedding(spec, text):
    raise AssertionError("lexical retrieval embeds nothing")


def measure(retrieval: Retrieval, program: Program, queries: list[str], query_vectors: np.ndarray | None) -> dict:
    state = program.states["p/i"]
    schema = json_schema(program.models["I"])
    loop = asyncio.new_event_loop()
    vectors = iter(query_vectors) if query_vectors is not None else None

    async def given(spec, text):
        return next(vectors)

    select_ms, render_ms = [], []
    for query in queries:
        inputs = {"query": query}
        start = time.perf_counter()
        demos = loop.run_until_complete(retrieval.select(inputs, given if vectors else _no_embedding))
        middle = time.perf_counter()
        prompt.render(state.with_examples(demos), schema, inputs)
        end = time.perf_counter()
        select_ms.append((middle - start) * 1000)
        render_ms.append((end - middle) * 1000)
    loop.close()
    return {"select_ms_median": statistics.median(select_ms), "select_ms_p95": float(np.percentile(select_ms, 95)),
            "render_ms_median": statistics.median(render_ms),
            "ratio_select_to_render": statistics.median(select_ms) / statistics.median(render_ms)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pools", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--dense", action="store_true", help="also time cosine search over 384-d vectors")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    data = json.loads(DATA.read_text(encoding="utf-8"))
    train, test = data["train"], data["test"][: args.queries]
    spec, states = spec_and_states(compile_source(Source("bench.icl", SOURCE)), "p")
    program = Program(spec, states)
    rng = np.random.default_rng(0)
    results = {"machine": describe(), "k": args.k, "queries": len(test), "pools": []}
    for size in args.pools:
        demos = tuple(Demo({"query": q}, {"intent": i}, 1.0, f"clinc:{n}") for n, (q, i) in enumerate(train[:size]))
        started = time.perf_counter()
        index = BM25([d.inputs["query"] for d in demos])
        built_ms = (time.perf_counter() - started) * 1000
        kinds = {"bm25": (index, None)}
        if args.dense:
            spec_e = EmbeddingSpec("e", "local/all-minilm-l6-v2", {})
            kinds["embedding"] = (Dense(spec_e, rng.standard_normal((size, 384)).astype(np.float32)),
                                  rng.standard_normal((len(test), 384)).astype(np.float32))
        for kind, (idx, query_vectors) in kinds.items():
            retrieval = Retrieval(Pool(demos, idx), args.k)
            trained = program.with_states({"p/i": program.states["p/i"].with_retrieval(retrieval)})
            row = {"pool": size, "retriever": kind, **measure(retrieval, trained, [q for q, _ in test], query_vectors),
                   "artifact_bytes": len(canonical(freeze(trained, source_file="bench.icl", source_sha256="0" * 64,
                                                          training={})).encode("utf-8"))}
            if kind == "bm25":
                row["index_build_ms"] = built_ms
            results["pools"].append(row)
            print(f"pool {size:>6} {kind:<9}: select {row['select_ms_median']:.3f} ms median "
                  f"(p95 {row['select_ms_p95']:.3f}), render {row['render_ms_median']:.3f} ms, "
                  f"ratio {row['ratio_select_to_render']:.2f}; artifact {row['artifact_bytes'] / 1e6:.2f} MB"
                  + (f"; index built in {built_ms:.0f} ms" if kind == "bm25" else ""), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
