"""How long `icldsl check` and the JSON reader take on hostile text (issue 22.2), in a tree.

    python bench/hostile_scan.py [--tree PATH] [--cases NAME,...] [--timeout 120]

Each case is a file written to a temporary folder and read in a fresh interpreter run in the
tree (so its package is the one imported) (default: this working tree; give an exported older commit to
compare): `check` is `python -m icldsl check FILE`, `json` is `icldsl.jsontext.loads` of the
file's text, as `run`, `load` and `diff` read an artifact and data readers a JSON file.
Prints the wall and CPU seconds of each (the child's user + system time), or `>timeout`.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20


def fill(start: str, unit: str, size: int) -> str:
    return start + unit * ((size - len(start)) // len(unit))


CASES = {  # name: (how it is read, its text)
    "check: lone quote + 20k \\\" pairs": ("check", lambda: fill('model A {\n  x: str "', '\\"', 40_000)),
    "check: lone quote + 40k \\\" pairs": ("check", lambda: fill('model A {\n  x: str "', '\\"', 80_000)),
    "check: 4 MB lone quote + \\\" pairs": ("check", lambda: fill('model A {\n  x: str "', '\\"', 4 * MB)),
    "check: 4 MB of closing brackets": ("check", lambda: fill("", "]})", 4 * MB)),
    "check: 4 MB of opening brackets": ("check", lambda: fill("", "([", 4 * MB)),
    "check: 4 MB of comment lines": ("check", lambda: fill("", "//\n", 4 * MB)),
    "check: 4 MB of quotes": ("check", lambda: fill("", '"', 4 * MB)),
    "json: 80 KB unclosed string of \\\"": ("json", lambda: fill('{"a": "', '\\"', 80 * 1024)),
    "json: 4 MB unclosed string of \\\"": ("json", lambda: fill('{"a": "', '\\"', 4 * MB)),
    "json: 4 MB of quotes": ("json", lambda: fill("", '"', 4 * MB)),
}
READ_JSON = ("import sys; from icldsl import jsontext\ntry: jsontext.loads(open(sys.argv[1], encoding='utf-8').read())\n"
             "except jsontext.JSONTextError: pass")


def timed(args: list[str], tree: Path, env: dict[str, str], timeout: float) -> tuple[float, float] | None:
    """Wall and CPU seconds of one run in `tree` (the current folder comes first on the path)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        subprocess.run(args, cwd=tree, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", type=Path, default=ROOT, help="the source tree to time (default: this one)")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds before a case is given up")
    args = parser.parse_args()
    chosen = args.cases.split(",") if args.cases else list(CASES)
    env = {**os.environ, "PYTHONPATH": str(args.tree.resolve()), "NO_COLOR": "1"}
    print(f"tree {args.tree}, python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}")
    print(f"{'case':<44}{'wall':>9}{'CPU':>9}")
    with tempfile.TemporaryDirectory(prefix="icldsl-hostile-") as scratch:
        for name in chosen:
            how, text = CASES[name]
            path = Path(scratch) / ("case.icl" if how == "check" else "case.json")
            path.write_text(text(), encoding="utf-8")
            command = ([sys.executable, "-m", "icldsl", "check", str(path)] if how == "check"
                       else [sys.executable, "-c", READ_JSON, str(path)])
            took = timed(command, args.tree, env, args.timeout)
            shown = (f"{took[0]:>8.2f}s{took[1]:>8.2f}s" if took else f"{'>' + str(int(args.timeout)) + 's':>9}")
            print(f"{name:<44}{shown}", flush=True)


if __name__ == "__main__":
    main()
