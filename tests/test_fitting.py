"""`icldsl.fit`, the Python way to train, on the adder project (tests/adder.py) and a loopback server:
the same artifact as `icldsl fit`, and an `icldsl.Error` with no artifact when it must refuse."""

from __future__ import annotations

from pathlib import Path

import pytest

import icldsl
from icldsl import artifact
from icldsl.cli import main
from icldsl.lm.cache import LMCache, default_path


def test_fit_from_python_writes_what_the_command_writes(project, monkeypatch) -> None:
    tmp_path, server = project
    monkeypatch.chdir(tmp_path)
    seen = []
    with LMCache(default_path()) as cache:
        fitted = icldsl.fit("adder.icl", output="py.artifact.json", cache=cache, report=False,
                            on_trained=seen.append)
    assert seen == [fitted.report] and fitted.files == () and not fitted.signed
    assert fitted.path == Path("py.artifact.json") and artifact.read(fitted.path) == fitted.artifact
    assert fitted.untrained.mean < fitted.trained.mean == 1.0
    calls = len(server.requests)
    assert main(["fit", "adder.icl", "--quiet", "--no-report", "-o", "cli.artifact.json"]) == 0
    assert len(server.requests) == calls  # every call answered by the cache the Python fit filled
    assert (tmp_path / "cli.artifact.json").read_bytes() == (tmp_path / "py.artifact.json").read_bytes()


def test_a_fit_that_must_refuse_raises_the_root_error_and_writes_nothing(project, monkeypatch) -> None:
    tmp_path, server = project
    monkeypatch.chdir(tmp_path)
    with LMCache(default_path()) as cache, pytest.raises(icldsl.Error, match="missing from the cache") as info:
        icldsl.fit("adder.icl", cache=cache, cache_mode="offline", report=False)
    assert info.value.exit_code == 1 and server.requests == []
    assert not (tmp_path / "adder.artifact.json").exists()
