"""Two runs of `icldsl run` that something goes wrong in, counting rows written and lost.

1. Kill one endpoint: an artifact whose LM lists two servers (server.py, two processes,
   50 ms answers; the default `max_retries`, 3); one is killed (SIGKILL) a few seconds into a run of N rows. Counted:
   rows in the output, rows with an output, rows lost (input rows with no line), what
   each server answered.
2. Interrupt and resume: the same run against one server, stopped with SIGINT a few
   seconds in, then run again. Counted: rows written by each run, rows written twice,
   rows lost.

    python bench/overhead/resilience.py --n 20000 --concurrency 64
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from calls import write_artifact  # noqa: E402
from overhead import served, start_server  # noqa: E402
from worker import dataset  # noqa: E402


def rows_of(path: Path) -> list[dict]:
    text = path.read_text()
    assert not text or text.endswith("\n"), "a torn last line"
    return [json.loads(line) for line in text.splitlines()]


def icldsl_run(folder: Path, concurrency: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "icldsl", "run", str(folder / "bench.artifact.json"), "--input",
               str(folder / "rows.jsonl"), "--output", str(folder / "preds.jsonl"), "--concurrency",
               str(concurrency), "-q", "--no-cache"]
    return subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, preexec_fn=_sigint_default)


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background shell ignores SIGINT; the child must not


def kill_one_endpoint(folder: Path, n: int, concurrency: int, after: float) -> dict:
    (a, port_a), (b, port_b) = start_server(), start_server()
    try:
        write_artifact(folder / "bench.artifact.json",
                       [f"http://127.0.0.1:{port_a}/ms50/v1", f"http://127.0.0.1:{port_b}/ms50/v1"],
                       options="")  # the default max_retries: 3
        run = icldsl_run(folder, concurrency)
        time.sleep(after)
        answered_a = served(port_a)
        a.kill()
        _, err = run.communicate(timeout=600)
        answered_b = served(port_b)
    finally:
        for server in (a, b):
            server.kill()
            server.wait(timeout=10)
    lines = rows_of(folder / "preds.jsonl")
    rows = {line["row"] for line in lines}
    return {"exit": run.returncode, "rows": n, "lines": len(lines), "predicted": sum("output" in x for x in lines),
            "failed": sum("error" in x for x in lines), "written_twice": len(lines) - len(rows),
            "lost": n - len(rows), "killed_server_answered": answered_a, "survivor_answered": answered_b,
            "summary": err.strip().splitlines()[-1]}


def interrupt_and_resume(folder: Path, n: int, concurrency: int, after: float) -> dict:
    (folder / "preds.jsonl").unlink(missing_ok=True)
    server, port = start_server()
    try:
        write_artifact(folder / "bench.artifact.json", f"http://127.0.0.1:{port}/ms50/v1", options="")
        run = icldsl_run(folder, concurrency)
        time.sleep(after)
        run.send_signal(signal.SIGINT)
        _, first_err = run.communicate(timeout=600)
        first = rows_of(folder / "preds.jsonl")
        calls_first = served(port)
        again = icldsl_run(folder, concurrency)
        _, second_err = again.communicate(timeout=600)
        calls_total = served(port)
    finally:
        server.kill()
        server.wait(timeout=10)
    lines = rows_of(folder / "preds.jsonl")
    rows = {line["row"] for line in lines}
    return {"first_exit": run.returncode, "written_by_first": len(first),
            "in_flight_when_stopped": calls_first - len(first), "second_exit": again.returncode,
            "written_by_second": len(lines) - len(first), "lines": len(lines),
            "written_twice": len(lines) - len(rows), "lost": n - len(rows),
            "all_predicted": all("output" in x for x in lines), "calls": calls_total,
            "first_message": first_err.strip().splitlines()[-1], "second_summary": second_err.strip().splitlines()[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--after", type=float, default=5.0, help="seconds into the run before the kill or interrupt")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "rows.jsonl").write_text("".join(json.dumps({"question": q}) + "\n" for q, _ in dataset(args.n)))
        print(json.dumps({"kill_one_endpoint": kill_one_endpoint(folder, args.n, args.concurrency, args.after)}),
              flush=True)
        print(json.dumps({"interrupt_and_resume": interrupt_and_resume(folder, args.n, args.concurrency,
                                                                        args.after)}), flush=True)


if __name__ == "__main__":
    main()
