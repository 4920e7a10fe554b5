"""icldsl's side of the training benchmark: what `icldsl fit` does (`fit_compiled`:
evaluate untrained on the test rows, train with `random_few_shot`, evaluate trained), on
a `.icl` file written here, against the benchmark's server through the `openai`
provider, without the LM cache. Run by `run.py` in the project's own environment."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

# run.py --icldsl-ref REF points ICLDSL_BENCH_SOURCE at a snapshot of icldsl at REF
sys.path.insert(0, os.environ.get("ICLDSL_BENCH_SOURCE") or str(Path(__file__).resolve().parents[2]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

import icldsl  # noqa: E402
from icldsl.language.compiler import compile_file  # noqa: E402
from icldsl.training.session import fit_compiled  # noqa: E402
from worker import Phases, main, write_icl_task  # noqa: E402


def field_type(spec: dict[str, Any]) -> str:
    if spec["type"] == "enum":
        return "enum(" + ", ".join(json.dumps(label) for label in spec["labels"]) + ")"
    return spec["type"]  # str, float, int


def source(config: dict[str, Any]) -> str:
    """The `.icl` file of the task, as a user would write it."""
    task, lm, s = config["task"], config["lm"], config["settings"]
    inp = task["input"]
    outputs = "\n".join(f"    {o['name']}: {field_type(o)} {json.dumps(o['description'])}" for o in task["outputs"])
    step = "decide" if task["kind"] == "classify" else "generate"
    reward_fields = ", ".join(json.dumps(f) for f in task["reward_fields"])
    return f"""// Written by bench/training/run_icldsl.py
model TaskInput {{
    {inp['name']}: str {json.dumps(inp['description'])}
}}

model TaskOutput {{
{outputs}
}}

lm bench = {json.dumps("openai/" + lm['model'])} {{ base_url: {json.dumps(config['base_url'])}, temperature: {float(lm['temperature'])}, max_tokens: {lm['max_tokens']}, max_concurrency: {s['concurrency']} }}

program task "The benchmark task" {{
    input  x: TaskInput
    y = {step} TaskOutput from x
        instructions {json.dumps(task['instructions'])}
    output y
}}

data rows = jsonl("train.jsonl", test: "test.jsonl")

train task on rows {{
    reward           exact_match(in_mask: [{reward_fields}])
    optimizer        random_few_shot(nb_min_examples: {s['examples']}, nb_max_examples: {s['examples']})
    epochs           {s['epochs']}
    batch_size       {s['batch_size']}
    validation_split {s['validation_split']}
    seed             {s['seed']}
    concurrency      {s['concurrency']}
    checkpoint       best val_reward max
}}
"""


def run(config: dict[str, Any]) -> dict[str, Any]:
    phases = Phases()

    with tempfile.TemporaryDirectory() as tmp:
        compiled = compile_file(write_icl_task(tmp, config, source(config)))
        train = compiled.trains[0]
        report = asyncio.run(fit_compiled(compiled, train, progress=phases.follow_fit))
        phases.stop()

    def outputs(scores: Any) -> list[dict | None]:
        scored = scores.runs[0].scored
        got = [s.example.x for s in scored]
        expected = [{config["task"]["input"]["name"]: r[config["task"]["input"]["name"]]} for r in config["test"]]
        assert got == expected, "icldsl evaluated the test rows in another order"
        return [s.trace.output for s in scored]

    states = report.program.states
    return {
        "tool": "icldsl", "version": icldsl.__version__,
        "untrained": outputs(report.untrained), "trained": outputs(report.trained),
        "own_reward": {"untrained": report.untrained.mean, "trained": report.trained.mean},
        "phases": phases.seconds, "spans": phases.spans,
        "sizes": dict(report.sizes),
        "history": {**report.history.history, "initial_val_reward": report.history.initial_val_reward,
                    "best_epoch": report.history.best_epoch},
        "demos": {path: [{"inputs": d.inputs, "output": d.output, "reward": d.reward} for d in st.examples]
                  for path, st in states.items()},
        "own_usage": report.usage.to_json(),
        "source": source(config),
    }


if __name__ == "__main__":
    main(run)
