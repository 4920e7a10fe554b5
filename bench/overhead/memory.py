"""Peak memory of `icldsl run` over a large file: N rows (100,000 by default) against the
loopback server (server.py, instant answers), the LM cache on (a fresh one) and off.
Reported: the process's peak resident set size (ru_maxrss), the rows written, the rate.

    python bench/overhead/memory.py --n 100000 --concurrency 64
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from calls import write_artifact  # noqa: E402
from overhead import start_server  # noqa: E402
from worker import dataset  # noqa: E402


def peak_of(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Run `icldsl command` in a child that reports its own peak RSS (ru_maxrss) as it ends;
    (peak in MB, its stderr)."""
    wrapper = ("import resource, runpy, sys\nsys.argv = sys.argv[1:]\n"
               "try:\n    runpy.run_module('icldsl', run_name='__main__')\n"
               "finally:\n    print('peak_rss_kb', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", wrapper, "icldsl", *command], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=3600)
    found = re.search(r"peak_rss_kb (\d+)", done.stderr)
    if not found:
        raise SystemExit(done.stderr)
    return int(found.group(1)) / 1024, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    server, port = start_server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            rows = folder / "rows.jsonl"
            with rows.open("w") as f:
                for question, _ in dataset(args.n):
                    f.write(json.dumps({"question": question}) + "\n")
            write_artifact(folder / "bench.artifact.json", f"http://127.0.0.1:{port}/ms0/v1")
            for cache in ("on", "off"):
                out = folder / f"preds-{cache}.jsonl"
                command = ["run", str(folder / "bench.artifact.json"), "--input", str(rows), "--output", str(out),
                           "--concurrency", str(args.concurrency), "-q"] + (["--no-cache"] if cache == "off" else [])
                env = {**os.environ, "PYTHONPATH": str(ROOT), "ICLDSL_CACHE_DIR": str(folder / "cache")}
                peak, err = peak_of(command, env)
                summary = next(line for line in err.splitlines() if line.startswith("ran "))
                lines = out.read_text().count("\n")
                print(json.dumps({"cache": cache, "rows": args.n, "lines": lines, "peak_rss_mb": round(peak, 1),
                                  "summary": summary}), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
