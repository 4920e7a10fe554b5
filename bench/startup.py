"""How long `icldsl --help` and `icldsl check programs/gsm8k.icl` take to start, before and after a change.

    python bench/startup.py [--before REF] [--repeat 15] [--out bench/results/startup.json]

The tree at REF (default: where this branch left main) is exported with `git archive`
beside the working tree; both run the same commands as `python -m icldsl ...` in fresh
interpreters, alternating, so load on the machine falls on both alike. Each tree gets
its own bytecode cache, written by a first unmeasured run, as an installed package has
(pip compiles it at install time). Prints, per command and tree, the median and the
fastest wall time and the median CPU time (user + system) of the child, and the median as
a ratio to `python -c pass` timed in the same run (the target is set in seconds, 0.2 s,
but the ratio is what compares across machines and loads).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = {"icldsl --help": ["--help"], "icldsl check programs/gsm8k.icl": ["check", "programs/gsm8k.icl"]}


def export(ref: str, into: Path) -> Path:
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref], check=True,
                             capture_output=True).stdout
    tree = into / "before"
    tree.mkdir()
    with tarfile.open(fileobj=__import__("io").BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return tree


def environment(tree: Path, cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPATH": str(tree), "PYTHONPYCACHEPREFIX": str(cache), "NO_COLOR": "1"}


def timed(args: list[str], tree: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the child's CPU seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "icldsl", *args], cwd=tree, env=env, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{args} failed in {tree}:\n{result.stderr.decode()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="the git ref to compare with (default: git merge-base HEAD main)")
    parser.add_argument("--repeat", type=int, default=15, help="measured runs per command and tree")
    parser.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args()
    ref = args.before or subprocess.run(["git", "-C", str(ROOT), "merge-base", "HEAD", "main"], check=True,
                                        capture_output=True, text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="icldsl-startup-") as scratch:
        trees = {f"before ({ref[:12]})": export(ref, Path(scratch)), "after (working tree)": ROOT}
        envs = {name: environment(tree, Path(scratch) / f"pycache-{i}") for i, (name, tree) in enumerate(trees.items())}
        for name, tree in trees.items():  # bytecode written, and each command known to work
            for command in COMMANDS.values():
                timed(command, tree, envs[name])
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeat):
            for label, command in COMMANDS.items():
                for name, tree in trees.items():
                    results.setdefault((label, name), []).append(timed(command, tree, envs[name]))
        floor = [timed_python() for _ in range(args.repeat)]
    base = statistics.median(floor)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, "
          f"{args.repeat} runs each")
    print(f"{'command':<36}{'tree':<28}{'median':>9}{'fastest':>9}{'CPU':>9}{'x floor':>9}")
    rows = []
    for (label, name), runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        rows.append({"command": label, "tree": name, "median_s": statistics.median(walls), "fastest_s": min(walls),
                     "cpu_s": statistics.median(cpus), "ratio_to_python": statistics.median(walls) / base})
        print(f"{label:<36}{name:<28}{ms(statistics.median(walls)):>9}{ms(min(walls)):>9}"
              f"{ms(statistics.median(cpus)):>9}{statistics.median(walls) / base:>8.1f}x")
    print(f"{'python -c pass (the floor)':<64}{ms(base):>9}{ms(min(floor)):>9}")
    if args.out:
        args.out.write_text(json.dumps({"python": sys.version.split()[0], "cores": os.cpu_count(),
                                        "load": os.getloadavg()[0], "repeat": args.repeat, "before": ref,
                                        "python_pass_s": base, "runs": rows}, indent=2) + "\n", encoding="utf-8")


def timed_python() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - start


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    main()
