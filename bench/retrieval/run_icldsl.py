"""icldsl's side of the retrieval benchmark: `fit_compiled` (evaluate untrained on the test
rows, train, evaluate trained) of a `.icl` file written here from the task's program, its
`lm` pointed at the benchmark's server (`openai/smollm2-135m`), with the optimizer under
test. Run by run.py in the project's environment; writes predictions, phases and what
training chose.

The LM cache is the one run.py gives (one per task and benchmark run, empty at its
start), so the untrained test pass and the untrained validation scores, which are the
same requests in every run of a task, reach the server once; the server counts only the
requests that reached it, icldsl's own count includes the cached ones.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("ICLDSL_BENCH_SOURCE") or str(Path(__file__).resolve().parents[2]))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "training"))

import icldsl  # noqa: E402
from icldsl.language.compiler import compile_file  # noqa: E402
from icldsl.lm.cache import LMCache  # noqa: E402
from icldsl.training.session import fit_compiled  # noqa: E402
from icldsl.training.training_record import HistoryRecord  # noqa: E402
from worker import Phases, main, write_icl_task  # noqa: E402


def source(config: dict[str, Any]) -> str:
    task, s = config["task"], config["settings"]
    labels = ", ".join(json.dumps(label) for label in task["labels"])
    return f"""// Written by bench/retrieval/run_icldsl.py from {task['program']}.icl
model TaskInput {{
    {task['input']}: str {json.dumps(task['input_description'])}
}}

model TaskOutput {{
    {task['label']}: enum({labels}) {json.dumps(task['label_description'])}
}}

lm bench = {json.dumps("openai/" + config['lm']['model'])} {{ base_url: {json.dumps(config['base_url'])}, temperature: 0.0, max_tokens: {config['lm']['max_tokens']}, max_concurrency: {s['concurrency']} }}

embedding minilm = "local/all-minilm-l6-v2"

program task "The benchmark task" {{
    input  x: TaskInput
    y = decide TaskOutput from x
        instructions {json.dumps(task['instructions'])}
    output y
}}

data rows = jsonl("train.jsonl", test: "test.jsonl")

train task on rows {{
    reward           exact_match()
    optimizer        {config['optimizer']}
    epochs           {s['epochs']}
    batch_size       {s['batch_size']}
    validation_split {s['validation_split']}
    seed             {s['seed']}
    concurrency      {s['concurrency']}
}}
"""


def run(config: dict[str, Any]) -> dict[str, Any]:
    phases = Phases()
    cache = LMCache(config["cache"]) if config.get("cache") else None
    with tempfile.TemporaryDirectory() as tmp:
        compiled = compile_file(write_icl_task(tmp, config, source(config)))
        report = asyncio.run(fit_compiled(compiled, compiled.trains[0], cache=cache, progress=phases.follow_fit))
        phases.stop()
    if cache is not None:
        cache.close()

    def outputs(scores: Any) -> list[dict | None]:
        scored = scores.runs[0].scored
        got = [s.example.x for s in scored]
        expected = [{config["task"]["input"]: r[config["task"]["input"]]} for r in config["test"]]
        assert got == expected, "icldsl evaluated the test rows in another order"
        return [s.trace.output for s in scored]

    def own(table: Any) -> dict[str, int]:
        total = table.total
        return {"calls": total.calls, "cache_hits": total.cache_hits}

    counts = {"untrained_eval": own(report.untrained.usage_table), "trained_eval": own(report.trained.usage_table),
              "train": own(report.history.usage_table)}
    (state,) = report.program.states.values()
    retrieval = state.retrieval
    return {
        "tool": "icldsl", "version": icldsl.__version__,
        "untrained": outputs(report.untrained), "trained": outputs(report.trained),
        "own_reward": {"untrained": report.untrained.mean, "trained": report.trained.mean},
        "own_counts": counts,
        "phases": phases.seconds, "spans": phases.spans,
        "history": HistoryRecord.of(report.history).to_json(),
        "trained_state": {"examples": len(state.examples),
                          "retrieval": None if retrieval is None else
                          {"k": retrieval.k, "order": retrieval.order, "kind": retrieval.pool.index.kind,
                           "pool": len(retrieval.pool.demos)}},
        "source": source(config),
    }


if __name__ == "__main__":
    main(run)
