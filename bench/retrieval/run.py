"""Retrieved few-shot examples on the bundled model: icldsl's optimizers and DSPy's
KNNFewShot on the same model, server, data and vectors (issue 12, item 7).

One OpenAI-compatible server (bench/training/serve.py: SmolLM2-135M through icldsl's
batched in-process client, the answer constrained by the request's JSON schema) serves
every run on 127.0.0.1 and counts its requests, per run (a tag in the base URL) and per
phase (from its request log and the runner's phase spans). Each run is a fresh process:

- icldsl (bench/retrieval/run_icldsl.py): `fit_compiled` of a `.icl` file with the task
  program's fields, descriptions and instructions and the optimizer under test, its `lm`
  `openai/smollm2-135m` at the server (temperature 0);
- DSPy 3.4.1 (bench/retrieval/run_dspy.py, in bench/.venvs/dspy): `dspy.Predict` with the
  JSONAdapter (the server declared as taking response schemas), then `KNNFewShot` over the
  same MiniLM vectors icldsl's `embedding minilm = "local/all-minilm-l6-v2"` computes.

Tasks (common.py): any `.icl` file of one labelled step (`--task path/to/file.icl`, its data
as the file gives it), or a name in programs/: `intents` is programs/intents.icl's data
(CLINC150 banking, 300 train / 90 test); `tweets` is programs/tweets.icl's (200 train / 120
test). The LM's `max_tokens` is the program's; `random_few_shot` and `labeled_few_shot`
train for the train block's `epochs`, the retrieval runs for one. Each tool has an LM
cache per task in the `--work` folder (a new one is empty), so the untrained pass, the
same requests in every run of a tool and task, reaches the server once: its calls are
counted in the first run of each tool, and in the `untrained` row. With `--resume` and
the same `--work` folder, runs added later reuse those caches.

    bash bench/overhead/setup_venvs.sh     # or only its dspy venv
    python bench/retrieval/run.py --task intents tweets --json bench/results/retrieval.json
    python bench/retrieval/run.py --table bench/results/retrieval.json

`--runs` names the runs, in order (default: all of RUNS below).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "training"))

from common import fmt, load_task, mean_se, minilm_vectors, paired  # noqa: E402
from machine import OtherLoad, describe  # noqa: E402



def _training_run() -> Any:
    """bench/training/run.py (the counting server and its per-phase counts), loaded under
    another name since this file is also `run`."""
    loader = importlib.util.spec_from_file_location("training_run", HERE.parent / "training" / "run.py")
    module = importlib.util.module_from_spec(loader)
    sys.modules["training_run"] = module
    loader.loader.exec_module(module)
    return module


training_run = _training_run()
VENV_DSPY = HERE.parent / ".venvs" / "dspy" / "bin" / "python"

# name -> (tool, what the runner gets)
RUNS: dict[str, tuple[str, dict[str, Any]]] = {}
for _k in (8, 4, 2):
    RUNS[f"nearest minilm k={_k}"] = ("icldsl", {"optimizer": f"nearest_few_shot(k: {_k}, retriever: minilm)"})
    RUNS[f"nearest bm25 k={_k}"] = ("icldsl", {"optimizer": f"nearest_few_shot(k: {_k}, retriever: \"bm25\")"})
    RUNS[f"dspy knn-labeled k={_k}"] = ("dspy", {"k": _k, "variant": "knn-labeled"})
    RUNS[f"dspy knn k={_k}"] = ("dspy", {"k": _k, "variant": "knn"})
RUNS["random_few_shot"] = ("icldsl", {"optimizer": "random_few_shot(nb_min_examples: 2, nb_max_examples: 4)"})
RUNS["labeled_few_shot"] = ("icldsl", {"optimizer": "labeled_few_shot(nb_min_examples: 3, nb_max_examples: 6, "
                                                    "candidates: 2)"})
DEFAULT_ORDER = ["nearest minilm k=8", "nearest bm25 k=8", "dspy knn-labeled k=8", "random_few_shot",
                 "labeled_few_shot", "nearest minilm k=4", "nearest bm25 k=4", "dspy knn-labeled k=4",
                 "nearest minilm k=2", "nearest bm25 k=2", "dspy knn-labeled k=2", "dspy knn k=8", "dspy knn k=4",
                 "dspy knn k=2"]


def task_config(name: str, vectors: bool = True) -> tuple[dict[str, Any], list[dict], list[dict], dict[str, list[float]]]:
    """The task's spec, rows and, with `vectors`, the MiniLM vectors of its texts (for DSPy's KNN)."""
    task = load_task(name)  # a .icl path or a name in programs/
    program = task.program()
    (input_field,) = list(task.train[0].x)
    in_schema = program.input_model.model_json_schema()
    step = next(s for s in program.spec.steps if getattr(s, "path", None) == task.path)
    out_schema = program.models[step.answer_model].model_json_schema()
    lm = next(lm for lm in program.spec.lms if lm.name == step.lm)

    def description(schema: dict[str, Any], field: str) -> str:
        node = schema["properties"][field]
        if "description" in node:
            return node["description"]
        ref = node.get("$ref") or node.get("allOf", [{}])[0].get("$ref", "")
        inner = schema.get("$defs", {}).get(ref.rsplit("/", 1)[-1], {})
        return inner.get("description", "")

    spec = {
        "program": task.name, "input": input_field,
        "input_description": in_schema["properties"][input_field].get("description", ""),
        "label": task.field, "labels": list(task.labels),
        "label_description": description(out_schema, task.field),
        "instructions": program.states[task.path].instructions,
        "max_tokens": lm.options.get("max_tokens", 64), "epochs": task.train_spec.epochs,
    }
    train = [{input_field: r.x[input_field], task.field: r.y[task.field]} for r in task.train]
    test = [{input_field: r.x[input_field], task.field: r.y[task.field]} for r in task.test]
    if not vectors:
        return spec, train, test, {}
    found = asyncio.run(minilm_vectors(task))
    return spec, train, test, {text: [float(x) for x in v / np.linalg.norm(v)] for text, v in found.items()}


def run_one(name: str, task: str, spec: dict[str, Any], train: list[dict], test: list[dict],
            vectors: dict[str, list[float]], server: Any, work: Path, log: Path,
            args: argparse.Namespace) -> dict[str, Any]:
    tool, extra = RUNS[name]
    tag = re.sub(r"[^a-z0-9]+", "-", f"{spec['program']} {name}".lower()).strip("-")
    epochs = spec["epochs"] if name in ("random_few_shot", "labeled_few_shot") else 1
    config = {
        "task": spec, "base_url": server.url(tag), "lm": {"model": server.model, "max_tokens": spec["max_tokens"]},
        "settings": {"seed": 0, "epochs": epochs, "batch_size": 16, "concurrency": args.concurrency,
                     "validation_split": 0.2},
        "train": train, "test": test,
        "cache": str(work / f"cache-{tool}-{spec['program']}" / ("lm.sqlite3" if tool == "icldsl" else "")),
        **extra,
    }
    if tool == "dspy":
        config["vectors"] = vectors
    python, script = (Path(sys.executable), HERE / "run_icldsl.py") if tool == "icldsl" else \
        (VENV_DSPY, HERE / "run_dspy.py")
    config_path, result_path = work / f"{tag}.config.json", work / f"{tag}.json"
    config_path.write_text(json.dumps(config))
    with log.open("a") as f:
        f.write(f"\n==== {task} {name} {time.strftime('%H:%M:%S')}\n")
        f.flush()
        start = time.perf_counter()
        process = subprocess.Popen([str(python), str(script), str(config_path), str(result_path)],
                                   stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        load = OtherLoad([server.process, process]).start()
        process.wait()
        other_cpu = load.stop()
        seconds = time.perf_counter() - start
    if process.returncode != 0 or not result_path.exists():
        raise RuntimeError(f"{name} on {task} failed with exit {process.returncode}; see {log}")
    result = json.loads(result_path.read_text())
    requests = server.get("/log").get(tag, [])
    phases = training_run.by_phase(requests, result["spans"])
    field = spec["label"]
    rewards = {when: [float(p is not None and p.get(field) == row[field]) for row, p in zip(test, result[when])]
               for when in ("untrained", "trained")}
    return {"task": task, "run": name, "tool": tool, "version": result["version"], **extra,
            "epochs": epochs, "rewards": rewards,
            "failed": {w: sum(p is None for p in result[w]) for w in ("untrained", "trained")},
            "server_by_phase": phases, "server_calls": len(requests),
            "phase_seconds": result["phases"], "process_seconds": round(seconds, 1), "other_cpu": round(other_cpu, 2),
            "own_counts": result.get("own_counts"), "history": result.get("history"),
            "trained_state": result.get("trained_state"), "predictions": {w: result[w] for w in ("untrained", "trained")}}


# ---- tables -------------------------------------------------------------------------------------


def table(data: dict[str, Any]) -> str:
    """The README's table. Calls are what each tool asked for (icldsl's own count includes the
    answers its LM cache gave); "reached the server" is the server's count. A DSPy row is also
    compared, on the same test rows, with icldsl's `nearest_few_shot` over the same vectors
    and k."""
    lines = ["| task | method | test accuracy | vs untrained (paired) | icldsl nearest minilm at the same k minus this (paired) | "
             "LM calls: training + trained test | of which reached the server | prompt tokens per trained test call | "
             "wall s: training + trained test |", "|---|---|---|---|---|---|---|---|---|"]
    runs = data["runs"]
    icldsl_minilm = {(r["task"], r["run"].rsplit("=", 1)[1]): r["rewards"]["trained"] for r in runs
                     if r["run"].startswith("nearest minilm")}
    done_untrained: set[tuple[str, str]] = set()
    for run in runs:
        task, tool = run["task"], run["tool"]
        r = run["rewards"]
        by = run["server_by_phase"]
        own = run.get("own_counts")
        if (task, tool) not in done_untrained:
            done_untrained.add((task, tool))
            u = by.get("untrained_eval", {})
            made = own["untrained_eval"]["calls"] if own else u.get("calls", 0)
            lines.append(f"| {task} | untrained ({tool}) | {fmt(*mean_se(r['untrained']))} | | | {made} (test pass) | "
                         f"{u.get('calls', 0)} | {u.get('prompt_tokens', 0) / max(1, u.get('calls', 0)):.0f} | "
                         f"{run['phase_seconds'].get('untrained_eval', 0):.0f} (test pass) |")
        tr, te = by.get("train", {}), by.get("trained_eval", {})
        made = (own["train"]["calls"], own["trained_eval"]["calls"]) if own else (tr.get("calls", 0), te.get("calls", 0))
        state = run.get("trained_state")
        kept = " (gate kept untrained)" if state and state["retrieval"] is None and state["examples"] == 0 else ""
        versus = ""
        if tool == "dspy" and (task, str(run["k"])) in icldsl_minilm:
            versus = fmt(*paired(r["trained"], icldsl_minilm[(task, str(run["k"]))]), signed=True)
        tokens = f"{te['prompt_tokens'] / te['calls']:.0f}" if te.get("calls") else "(cached)"
        seconds = run["phase_seconds"]
        lines.append(f"| {task} | {run['run']}{kept} | {fmt(*mean_se(r['trained']))} | "
                     f"{fmt(*paired(r['untrained'], r['trained']), signed=True)} | {versus} | {made[0]} + {made[1]} | "
                     f"{tr.get('calls', 0)} + {te.get('calls', 0)} | {tokens} | "
                     f"{seconds.get('train', 0):.0f} + {seconds.get('trained_eval', 0):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", nargs="+", default=["intents", "tweets"],
                        help="a .icl file of one labelled step (its data as the file says), or a name in programs/")
    parser.add_argument("--runs", nargs="+", default=DEFAULT_ORDER, choices=list(RUNS))
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--n-parallel", type=int, default=8)
    parser.add_argument("--n-ctx", type=int, default=4096)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--resume", action="store_true", help="keep the runs already in --json and skip them")
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "icldsl-bench-retrieval.log")
    parser.add_argument("--work", type=Path, help="folder for configs and caches (default: a new temporary one)")
    parser.add_argument("--table", type=Path)
    parser.add_argument("--limit", type=int, help="a smoke test: the first N test rows, 4N training rows")
    args = parser.parse_args()
    if args.table:
        print(table(json.loads(args.table.read_text())))
        return
    if any(RUNS[r][0] == "dspy" for r in args.runs) and not VENV_DSPY.exists():
        raise SystemExit(f"no DSPy venv at {VENV_DSPY}; run: bash bench/overhead/setup_venvs.sh")

    runs: list[dict[str, Any]] = []
    if args.resume and args.json and args.json.exists():
        runs = json.loads(args.json.read_text())["runs"]
    started = time.time()
    work = args.work or Path(tempfile.mkdtemp(prefix="icldsl-bench-retrieval-"))
    work.mkdir(parents=True, exist_ok=True)
    server = training_run.Server(argparse.Namespace(n_parallel=args.n_parallel, n_ctx=args.n_ctx), args.log)
    failures: list[str] = []

    def write() -> None:
        if args.json:
            args.json.write_text(json.dumps({
                "date": time.strftime("%Y-%m-%d"), "machine": describe(), "command": " ".join(["python", *sys.argv]),
                "seconds": round(time.time() - started), "model": server.model, "runs": runs, "failures": failures},
                indent=1))

    try:
        for given in args.task:
            spec, train, test, vectors = task_config(given, vectors=any(RUNS[r][0] == "dspy" for r in args.runs))
            task = spec["program"]  # the file's name without .icl
            if args.limit:
                train, test = train[:args.limit * 4], test[:args.limit]
            print(json.dumps({"task": task, "train": len(train), "test": len(test), "spec": spec}), flush=True)
            for name in args.runs:
                if any(r["task"] == task and r["run"] == name for r in runs):
                    continue
                try:
                    run = run_one(name, task, spec, train, test, vectors, server, work, args.log, args)
                except RuntimeError as exc:
                    print(f"error: {exc}", file=sys.stderr, flush=True)
                    failures.append(str(exc))
                    continue
                runs.append(run)
                write()
                m, se = mean_se(run["rewards"]["trained"])
                print(f"{task} | {name}: {m:.3f} ± {se:.3f} (untrained {np.mean(run['rewards']['untrained']):.3f}), "
                      f"server calls {run['server_calls']}, {run['process_seconds']} s", flush=True)
    finally:
        server.close()
        write()
    print(table({"runs": runs}))


if __name__ == "__main__":
    main()
