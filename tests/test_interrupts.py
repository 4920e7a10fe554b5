"""Ctrl-C at any moment of a command: exit status 130, a line saying so, no traceback, and
after a fit the files the README names (no artifact unless the fit finished)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from icldsl import artifact, report
from icldsl.cli import main
from tests.loopback import LoopbackServer
from tests.test_cli import PROGRAM, ROOT, answer_with_examples_only

# Python with SIGINT handled as in a terminal (a background job inherits it ignored), and
# KeyboardInterrupt raised where the library imports numpy: Ctrl-C while the command starts.
STARTING = """
import builtins, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
real = builtins.__import__
def interrupted(name, *args, **kwargs):
    if name == "numpy":
        raise KeyboardInterrupt
    return real(name, *args, **kwargs)
builtins.__import__ = interrupted
from icldsl.__main__ import main
sys.exit(main())
"""


def test_ctrl_c_while_the_command_starts_exits_130_without_a_traceback() -> None:
    result = subprocess.run([sys.executable, "-c", STARTING, "check", str(ROOT / "programs" / "gsm8k.icl")],
                            capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 130
    assert result.stderr.strip() == "interrupted"


@pytest.fixture
def project(tmp_path: Path, monkeypatch):
    with LoopbackServer(answer_with_examples_only) as server:
        rows = [{"question": f"{i}+{i + 1}", "answer": 2 * i + 1} for i in range(16)]
        (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:12]))
        (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[12:]))
        (tmp_path / "adder.icl").write_text(PROGRAM.format(url=server.openai_url), encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        yield tmp_path


def test_ctrl_c_while_the_report_is_drawn_leaves_no_artifact_and_the_checkpoint(project, monkeypatch, capsys) -> None:
    def drawing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_beside", drawing)
    assert main(["fit", "adder.icl", "-q"]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (project / "adder.artifact.json").exists()
    assert (project / "adder.checkpoint.json").exists() and (project / "adder.history.csv").exists()

    monkeypatch.undo()
    monkeypatch.chdir(project)
    assert main(["fit", "adder.icl", "-q"]) == 0  # the same command resumes and finishes
    assert (project / "adder.artifact.json").exists() and not (project / "adder.checkpoint.json").exists()


@pytest.fixture
def ctrl_c_interrupts():
    """SIGINT raising KeyboardInterrupt in this process, as in a terminal, even when pytest runs
    as a background job (which starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_the_artifact_is_written_lets_the_fit_finish(project, monkeypatch, ctrl_c_interrupts) -> None:
    write = artifact.write

    def pressed_while_writing(path, doc):
        os.kill(os.getpid(), signal.SIGINT)
        return write(path, doc)

    monkeypatch.setattr(artifact, "write", pressed_while_writing)
    assert main(["fit", "adder.icl", "-q", "--no-report"]) == 0
    assert artifact.read(project / "adder.artifact.json")
    assert not (project / "adder.checkpoint.json").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
