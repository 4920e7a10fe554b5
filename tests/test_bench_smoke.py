"""Every benchmark script still starts, and the ones that can run without the real model or
the peers' venvs run on a tiny setting, so a refactor of the library cannot break them
silently (as `icldsl.runtime.spec` and `generate`'s old signature once did).

Coverage, by what each script needs:
- run for real, tiny, against loopback LMs or none: parse_check.py, retrieval_speed.py (with
  the CLINC150 copy; skipped without), parse_failures.py (a loopback OpenAI server, a 3-row
  GSM8K file), retrieval/run_icldsl.py (a loopback server, 8 rows), overhead/calls.py
  (`icldsl run` over a file and a bare client, against its own fake server), and the tables
  of retrieval/run.py and training/run.py from the committed results;
- `--help` only (their module and imports load; running them needs the bundled model, a
  dataset copy or a long run): every other script with a command line;
- compiled only: the DSPy and Synalinks runners (run_dspy.py, run_synalinks.py), which
  import their framework from the peers' venvs (bench/overhead/setup_venvs.sh);
- imported: the config-driven runners of this venv (training/run_icldsl.py,
  overhead/run_icldsl.py) and the shared modules (machine.py, common.py, workers).
"""

from __future__ import annotations

import json
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from tests.loopback import LoopbackServer

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PEERS = ("run_dspy.py", "run_synalinks.py")  # import dspy / synalinks, installed in bench/.venvs only
CONFIG_DRIVEN = ("retrieval/run_icldsl.py", "training/run_icldsl.py", "overhead/run_icldsl.py")
LIBRARIES = ("machine.py", "retrieval/common.py", "training/worker.py", "overhead/worker.py")


def scripts() -> list[str]:
    return sorted(p.relative_to(BENCH).as_posix() for p in BENCH.rglob("*.py") if ".venvs" not in p.parts)


def bench(*args: str, cwd: Path = ROOT, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=timeout)


def test_every_script_is_covered_by_one_kind_of_check() -> None:
    helped = [s for s in scripts() if "add_argument" in (BENCH / s).read_text(encoding="utf-8")]
    peers = [s for s in scripts() if Path(s).name in PEERS]
    assert set(helped) | set(peers) | set(CONFIG_DRIVEN) | set(LIBRARIES) == set(scripts())
    assert len(helped) >= 20


# Runs scripts one after another in one interpreter, each as `python SCRIPT ARGS` would (its
# folder first on sys.path, the bench modules of the one before forgotten), so the library
# and numpy are imported once: `--help` of every script then takes seconds, not a minute.
RUNNER = """
import contextlib, io, json, runpy, sys
from pathlib import Path
mode, paths, bench = sys.argv[1], sys.argv[2:], str(Path(sys.argv[2]).parents[0])
base = list(sys.path)
results = {}
for path in paths:
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(BENCH):
            del sys.modules[name]
    sys.path[:] = [str(Path(path).parent), *base]
    sys.argv = [path, "--help"]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(path, run_name="__main__" if mode == "help" else "bench_module")
        status = 0
    except SystemExit as exc:
        status = exc.code or 0
    except BaseException as exc:
        status, err = 1, io.StringIO(f"{type(exc).__name__}: {exc}")
    results[path] = {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()[-500:]}
print(json.dumps(results))
"""


def in_one_interpreter(mode: str, paths: list[str]) -> dict[str, dict]:
    done = bench("-c", RUNNER.replace("BENCH", repr(str(BENCH))), mode, *(str(BENCH / p) for p in paths))
    assert done.returncode == 0, done.stderr
    return {str(Path(k).relative_to(BENCH).as_posix()): v for k, v in json.loads(done.stdout).items()}


def test_every_script_with_a_command_line_gives_its_help() -> None:
    helped = [s for s in scripts() if "add_argument" in (BENCH / s).read_text(encoding="utf-8")]
    done = in_one_interpreter("help", helped)
    broken = {s: r["stderr"] for s, r in done.items() if r["status"] != 0 or "usage:" not in r["stdout"]}
    assert broken == {} and len(done) == len(helped)


def test_the_peer_runners_compile_and_the_rest_imports(tmp_path: Path) -> None:
    for script in scripts():
        if Path(script).name in PEERS:
            py_compile.compile(str(BENCH / script), cfile=str(tmp_path / "x.pyc"), doraise=True)
    done = in_one_interpreter("import", [*CONFIG_DRIVEN, *LIBRARIES])
    assert {s: r["stderr"] for s, r in done.items() if r["status"] != 0} == {}


def test_parse_check_runs_tiny() -> None:
    parse = bench(str(BENCH / "parse_check.py"), "--lines", "60", "--repeat", "2")
    assert parse.returncode == 0, parse.stderr
    assert "ms" in parse.stdout


def test_retrieval_speed_runs_tiny(tmp_path: Path, clinc150_dir: Path) -> None:
    speed = bench(str(BENCH / "retrieval_speed.py"), "--pools", "50", "--queries", "20", "--k", "4",
                  "--json", str(tmp_path / "speed.json"), ICLDSL_CLINC150_PATH=str(clinc150_dir))
    assert speed.returncode == 0, speed.stderr
    assert json.loads((tmp_path / "speed.json").read_text())


GSM8K_PROGRAM = """
model MathQuestion { question: str "The math word problem" }
model NumericalAnswer { answer: float "The numerical answer" }
lm solver = "openai/loopback" { base_url: "%s", temperature: 0.0, max_tokens: 50 }
program gsm8k_baseline "The GSM8K baseline" {
    input  q: MathQuestion
    answer = generate NumericalAnswer from q
    output answer
}
"""


def test_parse_failures_runs_on_a_loopback_lm(tmp_path: Path) -> None:
    rows = [{"question": f"What is {i} plus {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(3)]
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    answers = ['{"answer": 0}', "the answer is {'answer': 2,}", '{"answer": "four"}', '{"answer": 4}'] * 2
    with LoopbackServer(answers) as server:
        (tmp_path / "gsm8k.icl").write_text(GSM8K_PROGRAM % server.openai_url)
        done = bench(str(BENCH / "parse_failures.py"), "--n", "3", "--program", str(tmp_path / "gsm8k.icl"),
                     "--out", str(tmp_path / "out.json"), ICLDSL_GSM8K_PATH=str(tmp_path))
    assert done.returncode == 0, done.stderr
    (constrained, unconstrained) = json.loads((tmp_path / "out.json").read_text())["results"]
    assert constrained["n"] == unconstrained["n"] == 3
    assert constrained["retries"] == 1 and constrained["accuracy"] == 1.0  # "four" retried, then 4


def test_the_retrieval_runner_fits_any_task_on_a_loopback_lm(tmp_path: Path) -> None:
    labels = ["positive", "negative"]
    rows = [{"text": f"{word} day number {i}", "label": labels[i % 2]}
            for i, word in enumerate(["good", "bad"] * 6)]
    task = {"program": "tiny", "input": "text", "input_description": "A text", "label": "label", "labels": labels,
            "label_description": "Its sentiment", "instructions": "Label the text."}

    def answer(request) -> dict:
        text = json.loads(request.last_user_message)["text"]
        return {"label": "positive" if text.startswith("good") else "negative"}

    with LoopbackServer(answer) as server:
        config = {"task": task, "base_url": server.openai_url, "lm": {"model": "loopback", "max_tokens": 16},
                  "settings": {"seed": 0, "epochs": 1, "batch_size": 4, "concurrency": 2, "validation_split": 0.25},
                  "train": rows[:8], "test": rows[8:], "cache": str(tmp_path / "lm.sqlite3"),
                  "optimizer": 'nearest_few_shot(k: 2, retriever: "bm25")'}
        (tmp_path / "config.json").write_text(json.dumps(config))
        done = bench(str(BENCH / "retrieval" / "run_icldsl.py"), str(tmp_path / "config.json"),
                     str(tmp_path / "result.json"))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["own_reward"] == {"untrained": 1.0, "trained": 1.0}
    assert [p["label"] for p in result["trained"]] == [r["label"] for r in rows[8:]]


def test_the_calls_bench_runs_tiny(tmp_path: Path) -> None:
    calls = bench(str(BENCH / "overhead" / "calls.py"), "--n", "20", "--repeat", "1", "--latency", "0",
                  "--concurrency", "4", "--runners", "icldsl run --no-cache", "one-client", "--idle", "0",
                  "--json", str(tmp_path / "calls.json"))
    assert calls.returncode == 0, calls.stderr
    runs = json.loads((tmp_path / "calls.json").read_text())["runs"]
    assert {r["runner"]: (r["correct"], r["served"]) for r in runs} == {
        "icldsl run --no-cache": (20, 20), "one-client": (20, 20)}


@pytest.mark.parametrize("script, results", [("retrieval/run.py", "retrieval.json"),
                                              ("training/run.py", "training.json")])
def test_the_drivers_print_their_tables_from_the_committed_results(script: str, results: str) -> None:
    done = bench(str(BENCH / script), "--table", str(BENCH / "results" / results))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n|") >= 3
