"""Framework overhead: icldsl, DSPy and Synalinks evaluating the same one-step
program over N questions against the same loopback OpenAI-compatible server, in
one run, interleaved.

The server (server.py, its own process) answers at once, then after 50 ms. For
each latency and concurrency, every framework evaluates N questions (its own
evaluation loop, exact-match reward, caches off); the order of the frameworks
rotates between repetitions. Reported: calls per second, and the seconds above
the ideal N x latency / concurrency. Each framework runs in a long-lived worker
process in its own virtual environment (setup_venvs.sh makes them).

    bash bench/overhead/setup_venvs.sh && python bench/overhead/overhead.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
VENVS = HERE.parent / ".venvs"
sys.path.insert(0, str(HERE.parent))

from machine import OtherLoad, describe, wait_until_idle  # noqa: E402

RUNNERS = {
    "icldsl": (Path(sys.executable), HERE / "run_icldsl.py"),
    "dspy": (VENVS / "dspy" / "bin" / "python", HERE / "run_dspy.py"),
    "synalinks": (VENVS / "synalinks" / "bin" / "python", HERE / "run_synalinks.py"),
}


class Worker:
    """One framework's runner process, answering one JSON line per command."""

    def __init__(self, name: str, log: Path) -> None:
        python, script = RUNNERS[name]
        if not python.exists():
            raise SystemExit(f"no venv for {name} at {python}; run: bash bench/overhead/setup_venvs.sh")
        self.name = name
        self.process = subprocess.Popen([str(python), str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=log.open("a"), text=True)
        self.version = json.loads(self.ask(None))["version"]

    def ask(self, command: dict | None) -> str:
        assert self.process.stdin and self.process.stdout
        if command is not None:
            self.process.stdin.write(json.dumps(command) + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} runner stopped; see its log")
        return line

    def close(self) -> None:
        assert self.process.stdin
        self.process.stdin.close()
        self.process.wait(timeout=60)


def start_server() -> tuple[subprocess.Popen, int]:
    server = subprocess.Popen([sys.executable, str(HERE / "server.py")], stdout=subprocess.PIPE, text=True)
    assert server.stdout
    line = server.stdout.readline()  # "listening on 127.0.0.1:PORT"
    return server, int(line.rsplit(":", 1)[1])


def served(port: int, reset: bool = False) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/{'reset' if reset else 'stats'}",
                                     method="POST" if reset else "GET")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read()).get("served", 0)


def server_alone(port: int, n: int) -> dict[str, float]:
    """Completions per second the server gives a raw keep-alive client, per concurrency."""
    out = {}
    for concurrency in (1, 8, 64):
        done = subprocess.run([sys.executable, str(HERE / "loadgen.py"), "--url", f"http://127.0.0.1:{port}/ms0/v1",
                               "--n", str(n), "--concurrency", str(concurrency)],
                              capture_output=True, text=True, check=True)
        out[str(concurrency)] = json.loads(done.stdout)["served_per_s"]
    return out


def table(runs: list[dict], frameworks: list[str], n: int) -> str:
    lines = [f"| latency | concurrency | framework | calls/s median (min-max) | seconds above ideal median "
             f"(min-max) | calls/s vs icldsl |", "|---|---|---|---|---|---|"]
    cells = sorted({(r["latency_ms"], r["concurrency"]) for r in runs})
    for latency, concurrency in cells:
        rates = {}
        for name in frameworks:
            mine = [r for r in runs if (r["latency_ms"], r["concurrency"], r["framework"]) ==
                    (latency, concurrency, name)]
            if not mine:
                continue
            rate = [n / r["seconds"] for r in mine]
            above = [r["seconds"] - n * latency / 1000 / concurrency for r in mine]
            rates[name] = statistics.median(rate)
            ratio = f"{rates[name] / rates['icldsl']:.2f}x" if "icldsl" in rates else "-"
            lines.append(f"| {latency} ms | {concurrency} | {name} | {statistics.median(rate):.0f} "
                         f"({min(rate):.0f}-{max(rate):.0f}) | {statistics.median(above):.2f} "
                         f"({min(above):.2f}-{max(above):.2f}) | {ratio} |")
    return "\n".join(lines)


def interleaved(args: argparse.Namespace, names: list[str], key: str, port: int, processes: list[subprocess.Popen],
                measure: Callable[[str, int, int], dict]) -> list[dict]:
    """Every (latency, concurrency, name) of `args`, `args.repeat` times, the names' order
    rotating between repetitions, each after waiting for an idle machine; `measure(name,
    latency, concurrency)` runs one. Each run records the calls the server saw and how busy
    other processes kept the machine, and is checked: `args.n` calls and right answers."""
    runs = []
    for rep in range(args.repeat):
        order = names[rep % len(names):] + names[:rep % len(names)]
        for latency in args.latency:
            for concurrency in args.concurrency:
                for name in order:
                    if args.idle > 0:  # 0: do not wait (a smoke test)
                        wait_until_idle(args.idle, max_wait=60)
                    served(port, reset=True)
                    load = OtherLoad(processes).start()
                    answer = measure(name, latency, concurrency)
                    run = {"rep": rep, key: name, "latency_ms": latency, "concurrency": concurrency,
                           **answer, "served": served(port), "other_cpu": round(load.stop(), 2)}
                    runs.append(run)
                    print(json.dumps(run), flush=True)
                    if run["correct"] != args.n or run["served"] != args.n:
                        print(f"warning: {name} got {run['correct']}/{args.n} right with "
                              f"{run['served']} calls", file=sys.stderr)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--latency", type=int, nargs="+", default=[0, 50], help="server latencies in ms")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--frameworks", nargs="+", default=list(RUNNERS), choices=list(RUNNERS))
    parser.add_argument("--idle", type=float, default=0.25,
                        help="before each measurement, wait (up to 60 s) until other processes use under this many CPUs "
                             "(0: do not wait)")
    parser.add_argument("--json", type=Path, help="write every measurement here")
    args = parser.parse_args()

    log = Path("/tmp/icldsl-bench-overhead.log")
    server, port = start_server()
    workers: dict[str, Worker] = {}
    try:
        alone = server_alone(port, 20000)
        print(json.dumps({"machine": describe(), "server_alone_per_s": alone}), flush=True)
        workers = {name: Worker(name, log) for name in args.frameworks}
        versions = {name: w.version for name, w in workers.items()}
        print(json.dumps({"versions": versions}), flush=True)
        runs = interleaved(args, args.frameworks, "framework", port, [server, *(w.process for w in workers.values())],
                           lambda name, latency, concurrency: json.loads(workers[name].ask({
                               "base_url": f"http://127.0.0.1:{port}/ms{latency}/v1", "n": args.n,
                               "concurrency": concurrency})))
        if args.json:
            args.json.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "machine": describe(),
                                             "server_alone_per_s": alone, "versions": versions,
                                             "args": {k: str(v) for k, v in vars(args).items()}, "runs": runs},
                                            indent=1))
        print(table(runs, args.frameworks, args.n))
    finally:
        for worker in workers.values():
            worker.close()
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
