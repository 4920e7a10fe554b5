"""A fit interrupted mid-way (Ctrl-C or a crash) loses no finished call and resumes where it stopped.

The CLI runs in a subprocess against a loopback server that interrupts it from inside
the N-th request, while that request is still unanswered.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from icldsl.lm.cache import LMCache
from tests.loopback import LoopbackServer, Reply, Request, openai_reply
from tests.adder import answer_with_examples_only, write_adder
from tests.cli.test_cli import ROOT

INTERRUPT_AT = 14  # of the 35 requests an uninterrupted fit makes


class Interrupter:
    """A script that answers like test_cli's server and, once armed, sends `signum` to the
    CLI process from inside its `at`-th request, which it then leaves hanging."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.count = 0
        self.target: tuple[int, int, int] | None = None  # (pid, signal, at which request)

    def arm(self, pid: int, signum: int, at: int) -> None:
        with self.lock:
            self.count, self.target = 0, (pid, signum, at)

    def __call__(self, request: Request) -> Reply | str:
        if request.json is None:  # the body was cut short: its sender was killed while sending it
            return Reply(drop=True)
        content = json.dumps(answer_with_examples_only(request))
        with self.lock:
            self.count += 1
            fire = self.target is not None and self.count == self.target[2]
        if fire:
            pid, signum, _ = self.target
            os.kill(pid, signum)
            return dataclasses.replace(openai_reply(content), delay=30.0)  # cut short when the server stops
        return content


# The CLI with Ctrl-C handled as in a terminal: a shell starts background jobs with SIGINT
# ignored and children inherit that, so without this the ctrl-c case would measure nothing
# whenever pytest itself runs as a background job.
CLI = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
       "from icldsl.__main__ import main; sys.exit(main())")


def fit(project: Path, cache_dir: Path, output: str, *, script: Interrupter | None = None,
        signum: int | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "ICLDSL_CACHE_DIR": str(cache_dir), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", CLI, "fit", "adder.icl", "-q", "-o", output],
                            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if script is not None and signum is not None:
        script.arm(proc.pid, signum, INTERRUPT_AT)
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        if script is not None:
            script.target = None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def entries(cache_dir: Path) -> int:
    with LMCache(cache_dir / "lm.sqlite3") as cache:
        return cache.stats().entries


@pytest.fixture
def project(tmp_path: Path):
    script = Interrupter()
    server = LoopbackServer(script).start()
    try:
        write_adder(tmp_path, server.openai_url)
        yield tmp_path, server, script
    finally:
        server.stop()
    assert server.errors == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "crash"])
def test_an_interrupted_fit_resumes_from_the_cache_and_ends_like_an_uninterrupted_one(project, signum) -> None:
    tmp_path, server, script = project
    reference = fit(tmp_path, tmp_path / "cache-ref", "reference.json")
    assert reference.returncode == 0, reference.stderr
    total = len(server.requests)
    assert total == entries(tmp_path / "cache-ref") == 35
    everything = {r.body for r in server.requests}
    assert len(everything) == total

    del server.requests[:]
    interrupted = fit(tmp_path, tmp_path / "cache", "resumed.json", script=script, signum=signum)
    if signum == signal.SIGINT:
        assert interrupted.returncode == 130
        assert "interrupted" in interrupted.stderr and "run the same command again to resume" in interrupted.stderr
        assert "Traceback" not in interrupted.stderr
    else:
        assert interrupted.returncode == -signal.SIGKILL
    assert len(server.requests) >= INTERRUPT_AT
    assert not (tmp_path / "resumed.json").exists()  # as the docs say
    assert (tmp_path / "resumed.history.csv").exists() == (tmp_path / "resumed.checkpoint.json").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no half-written artifact
    saved = entries(tmp_path / "cache")
    # The requests answered before the interrupt were stored as they finished; the few
    # whose answers were on their way when it came (fewer than `concurrency`) were not.
    assert INTERRUPT_AT - 4 <= saved < len(server.requests)
    sent_before = {r.body for r in server.requests if r.json is not None}  # not one cut short by the kill

    del server.requests[:]
    resumed = fit(tmp_path, tmp_path / "cache", "resumed.json")
    assert resumed.returncode == 0, resumed.stderr
    assert len(server.requests) == total - saved  # only the calls not made before
    sent_after = {r.body for r in server.requests}
    assert sent_after <= everything and sent_before | sent_after == everything
    assert (tmp_path / "resumed.json").read_bytes() == (tmp_path / "reference.json").read_bytes()
    assert entries(tmp_path / "cache") == total
