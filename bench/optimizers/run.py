"""Each optimizer on the bundled local model: untrained and trained test reward, and the calls spent.

For every task (a program in programs/) and every optimizer line below, the task's
train block gets that optimizer instead of its own, and `icldsl fit` runs in a
subprocess. Results go to bench/results/optimizers.json; bench/README.md holds the table.

    python bench/optimizers/run.py                      # every task and optimizer
    python bench/optimizers/run.py --task tweets --optimizer omega
    python bench/optimizers/run.py --task tweets --optimizer labeled_few_shot --lm local:/path/gemma-3-270m.gguf
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "optimizers.json"

TASKS = {
    "tweets": ROOT / "programs" / "tweets.icl",
    "gsm8k": ROOT / "programs" / "gsm8k.icl",
}
# The proposing LM of the instruction optimizers is the task's own LM (the only one offline).
OPTIMIZERS = {
    "random_few_shot": "random_few_shot(nb_min_examples: 2, nb_max_examples: 4)",
    "bootstrap_few_shot": "bootstrap_few_shot(nb_min_examples: 2, nb_max_examples: 4, threshold: 1.0, candidates: 3)",
    "labeled_few_shot": "labeled_few_shot(nb_min_examples: 3, nb_max_examples: 6, candidates: 4)",
    "omega": "omega(lm: {lm}, embedding: minilm, population_size: 4, children: 2)",
    "reflective": "reflective(lm: {lm}, proposals: 2)",
}
EMBEDDING = 'embedding minilm = "local/all-minilm-l6-v2"\n'


def variant(source: str, optimizer: str, folder: Path, target: str | None = None) -> str:
    """The task's source with `optimizer` as its only optimizer line, data paths made absolute,
    and the LM's target replaced by `target` when given."""
    lm = re.search(r"^lm (\w+) =", source, re.M).group(1)
    if target:
        source = re.sub(r'^(lm \w+ = )"[^"]*"', lambda m: m.group(1) + json.dumps(target), source, count=1, flags=re.M)
    text = re.sub(r"^(\s*)optimizer\s+.*$", lambda m: f"{m.group(1)}optimizer {optimizer.format(lm=lm)}",
                  source, count=1, flags=re.M)
    text = re.sub(r'"(data/[^"]+)"', lambda m: json.dumps(str(folder / m.group(1))), text)
    return (EMBEDDING if "embedding:" in optimizer else "") + text


def run(task: str, name: str, out: Path, env: dict[str, str], target: str | None = None) -> dict:
    source = TASKS[task].read_text(encoding="utf-8")
    path = out / f"{task}_{name}.icl"
    path.write_text(variant(source, OPTIMIZERS[name], TASKS[task].parent, target), encoding="utf-8")
    artifact = out / f"{task}_{name}.artifact.json"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "icldsl", "fit", str(path), "-o", str(artifact), "-q",
                           "--no-report"], capture_output=True, text=True, env=env, cwd=out)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        return {"task": task, "optimizer": name, "error": proc.stderr[-2000:], "seconds": seconds}
    diff = re.search(r"trained - untrained: ([+-][\d.]+) ± ([\d.]+) \(paired over (\d+)", proc.stdout)
    return {
        "task": task, "optimizer": name, "line": OPTIMIZERS[name], "lm": target, "seconds": round(seconds, 1),
        **measured(json.loads(artifact.read_text())),
        "difference": float(diff.group(1)), "stderr": float(diff.group(2)), "test_examples": int(diff.group(3)),
        "stdout": proc.stdout[-3000:],
    }


def measured(doc: dict) -> dict:
    """What the table shows of an artifact's training record."""
    from icldsl.training.training_record import TrainingRecord

    record = TrainingRecord.of_artifact(doc)
    return {
        "untrained": record.scores["untrained"].reward.mean, "trained": record.scores["trained"].reward.mean,
        "best_epoch": record.history.best_epoch, "stopped": record.history.stopped,
        "calls": record.total_usage.calls,
        "tokens": record.total_usage.prompt_tokens + record.total_usage.completion_tokens,
        "training_calls": record.history.usage.calls,  # training and validation, without the test passes
        "events": len(record.history.events),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", action="append", choices=list(TASKS))
    parser.add_argument("--optimizer", action="append", choices=list(OPTIMIZERS))
    parser.add_argument("--lm", help="the tasks' LM target instead of theirs, e.g. local:/path/model.gguf")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()
    env = dict(os.environ)
    env.setdefault("ICLDSL_GSM8K_PATH", str(ROOT.parent / "shared" / "datasets" / "gsm8k"))
    env.setdefault("ICLDSL_CACHE_DIR", str(ROOT / "bench" / ".cache"))  # shared by the runs: calls still count
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.task or TASKS:
            for name in args.optimizer or OPTIMIZERS:
                result = run(task, name, Path(tmp), env, args.lm)
                results.append(result)
                print(json.dumps({k: v for k, v in result.items() if k != "stdout"}), flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
