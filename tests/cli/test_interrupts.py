"""Ctrl-C at any moment of a command: exit status 130, a line saying so, no traceback, and
after a fit the files the docs name (no artifact unless the training finished)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from icldsl import artifact, report
from icldsl.cli import main
from tests.cli.test_cli import ROOT

# Python with SIGINT handled as in a terminal (a background job inherits it ignored), and
# KeyboardInterrupt raised where the library imports lark (the parser): Ctrl-C while the command starts.
STARTING = """
import builtins, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
real = builtins.__import__
def interrupted(name, *args, **kwargs):
    if name == "lark":
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
def adder(project, monkeypatch) -> Path:
    """test_cli's adder project, as the working directory."""
    monkeypatch.chdir(project[0])
    return project[0]


def test_ctrl_c_while_the_report_is_drawn_keeps_the_artifact(adder, monkeypatch, capsys) -> None:
    def drawing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "write_beside", drawing)
    assert main(["fit", "adder.icl", "-q"]) == 130
    assert "interrupted" in capsys.readouterr().err
    # The artifact is written before anything decorative: the training is not lost.
    assert artifact.read(adder / "adder.artifact.json")["training"]["scores"]["trained"]["reward_mean"] == 1.0
    assert not (adder / "adder.checkpoint.json").exists() and (adder / "adder.history.csv").exists()
    assert not (adder / "adder.report.html").exists()

    monkeypatch.undo()
    monkeypatch.chdir(adder)
    assert main(["plot", "adder.artifact.json", "--report"]) == 0  # what the warning advises
    assert (adder / "adder.report.html").exists()


@pytest.fixture
def ctrl_c_interrupts():
    """SIGINT raising KeyboardInterrupt in this process, as in a terminal, even when pytest runs
    as a background job (which starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_while_the_artifact_is_written_lets_the_fit_finish(adder, monkeypatch, ctrl_c_interrupts) -> None:
    write = artifact.write

    def pressed_while_writing(path, doc):
        os.kill(os.getpid(), signal.SIGINT)
        return write(path, doc)

    monkeypatch.setattr(artifact, "write", pressed_while_writing)
    assert main(["fit", "adder.icl", "-q", "--no-report"]) == 0
    assert artifact.read(adder / "adder.artifact.json")
    assert not (adder / "adder.checkpoint.json").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
