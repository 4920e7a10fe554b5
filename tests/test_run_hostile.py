"""`icldsl run --input ... --output ...` on hostile input and unlucky outputs: a bad row (too
long, too deep, not UTF-8, NaN) is a line of its own and the run goes on; an output in a
missing folder, a folder, a full disk or one another run is writing is a message with its
exit status, and nothing written is lost."""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from icldsl import predict
from icldsl.cli import main
from icldsl.errors import EXIT_BUSY
from tests.loopback import LoopbackServer
from tests.test_predict import lines, run_command, served, slow  # noqa: F401 (served: a fixture)

ROW = json.dumps({"name": "a", "tags": []})


def run(*extra: str) -> int:
    return main(["run", "t.artifact.json", "--output", "p.jsonl", "--no-cache", "-q", *extra])


def test_bad_rows_each_get_their_line_and_the_run_goes_on(served, capsys, monkeypatch) -> None:
    tmp_path, server = served
    monkeypatch.setattr(predict, "MAX_ROW_BYTES", 250_000)
    rows = [
        ROW.encode(),
        b'{"name": "deep", "tags": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"name": "caf\xe9", "tags": []}',  # Latin-1, not UTF-8
        b'{"name": "n", "tags": [], "key": NaN}',
        b'{"name": "' + b"x" * 300_000 + b'", "tags": []}',
        b'{"name": "last", "tags": []}',
    ]
    (tmp_path / "rows.jsonl").write_bytes(b"\n".join(rows) + b"\n")
    assert run("--input", "rows.jsonl", "--id", "key") == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "2 predicted, 4 failed" in err
    got = {line["row"]: line for line in lines(tmp_path / "p.jsonl")}
    assert got[1]["output"] == {"label": "A/0"} and got[6]["output"] == {"label": "LAST/0"}
    assert got[2]["error"] == "line 2 is not JSON: nested more than 100 levels deep (column 125)"
    assert got[3]["error"] == "line 3: byte 0xe9 at column 14 is not UTF-8; save the file as UTF-8"
    assert got[4] == {"row": 4, "error": "line 4 is not JSON: NaN is not a JSON number (column 34)"}
    assert got[5]["error"] == "line 5 holds 300,025 bytes, more than a row may (250,000); it was skipped"
    assert len(server.requests) == 2


def test_bad_csv_rows_each_get_their_line(served, capsys, monkeypatch) -> None:
    tmp_path, _ = served
    monkeypatch.setattr(predict, "MAX_ROW_BYTES", 1000)
    (tmp_path / "rows.csv").write_bytes(b"name,tags\nx,[]\ncaf\xe9,[]\n" + b"y" * 3000 + b",[]\nz,[]\n")
    assert run("--input", "rows.csv") == 1
    got = {line["row"]: line for line in lines(tmp_path / "p.jsonl")}
    assert got[1]["output"] == {"label": "X/0"} and got[4]["output"] == {"label": "Z/0"}
    assert got[2]["error"].startswith("line 3: byte 0xe9 at column 4 is not UTF-8")
    assert got[3]["error"] == "line 4 holds 3,004 bytes, more than a row may (1,000); it was skipped"
    assert "Traceback" not in capsys.readouterr().err


class Recorded(io.BytesIO):
    """A stream that remembers the most bytes one read returned."""

    most = 0

    def readline(self, size: int | None = -1) -> bytes:
        data = super().readline(size)
        self.most = max(self.most, len(data))
        return data


def test_a_huge_row_is_skipped_without_being_read_whole() -> None:
    from pydantic import BaseModel

    class Item(BaseModel):
        name: str

    stream = Recorded(b'{"name": "' + b"x" * (5 << 20) + b'"}\n{"name": "after"}\n')
    rows = list(predict.read_rows(stream, "jsonl", Item, name="rows.jsonl", max_row_bytes=4096))
    assert rows[0].problem == f"line 1 holds {(5 << 20) + 13:,} bytes, more than a row may (4,096); it was skipped"
    assert rows[1].values == Item(name="after")
    assert stream.most <= 1 << 20  # never more than a megabyte at once


@pytest.mark.parametrize("output, message", [
    ("missing/p.jsonl", "cannot write missing/p.jsonl: the folder missing does not exist; create it first"),
    (".", "--output . is a folder: name a file, such as ./predictions.jsonl"),
    ("/dev/full", "cannot write to /dev/full: No space left on device; the 0 rows written by this run before are kept"),
])
def test_an_output_that_cannot_be_written_is_a_message(served, capsys, output, message) -> None:
    tmp_path, _ = served
    (tmp_path / "rows.jsonl").write_text(ROW + "\n")
    assert main(["run", "t.artifact.json", "--input", "rows.jsonl", "--output", output, "--no-cache", "-q"]) == 1
    err = capsys.readouterr().err
    assert f"error: {message}" in err and "Traceback" not in err


def test_a_disk_that_fills_up_mid_run_loses_nothing_written(served, capsys, monkeypatch) -> None:
    tmp_path, server = served
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"name": f"n{i}", "tags": []}) + "\n" for i in range(10)))
    real_write, outputs = os.write, []  # the lines written whole, then the output's descriptor

    def filling(fd: int, data: bytes) -> int:
        if data.startswith(b'{"row"') and len(outputs) < 4:
            outputs.append(fd)
        elif data.startswith(b'{"row"') and len(outputs) == 4:  # 10 bytes of the fifth line fit, then no more
            outputs.append(fd)
            return real_write(fd, data[:10])
        elif fd in outputs[4:]:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(predict.os, "write", filling)
    assert run("--input", "rows.jsonl", "--concurrency", "1") == 1
    err = capsys.readouterr().err
    assert ("error: cannot write to p.jsonl: No space left on device; the 4 rows written by this run before are "
            "kept") in err and "Traceback" not in err
    monkeypatch.setattr(predict.os, "write", real_write)
    assert run("--input", "rows.jsonl") == 0
    assert "cut a torn last line (10 bytes)" in capsys.readouterr().err
    assert sorted(line["row"] for line in lines(tmp_path / "p.jsonl")) == list(range(1, 11))


def test_a_second_run_on_the_same_output_is_refused_while_the_first_writes(tmp_path: Path) -> None:
    n = 200
    with LoopbackServer(slow(0.05)) as server:
        command, env = run_command(tmp_path, server, n, concurrency=2)
        first = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (not (tmp_path / "p.jsonl").exists()
                                                   or not (tmp_path / "p.jsonl").read_text()):
                time.sleep(0.02)
            second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
            _, err = first.communicate(timeout=120)
        finally:
            first.kill()
    assert first.returncode == 0, err
    assert second.returncode == EXIT_BUSY == 75
    assert second.stderr.strip() == ("error: p.jsonl is being written by another `icldsl run` (it holds the file's "
                                     "lock); wait for that run to end, or write to another file")
    final = lines(tmp_path / "p.jsonl")
    assert sorted(line["row"] for line in final) == list(range(1, n + 1))  # each row once


def test_the_lock_is_kept_when_retry_failed_rewrites_the_output(tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    out.write_text('{"row": 1, "output": {}}\n{"row": 2, "error": "x"}\n')
    first = predict.PredictionsFile(str(out), retry_failed=True)
    try:
        assert out.read_text() == '{"row": 1, "output": {}}\n' and first.done == {1} and not first.failed
        with pytest.raises(predict.OutputBusy, match="being written by another"):
            predict.PredictionsFile(str(out))
        first.write(2, output={"label": "b"})
    finally:
        first.close()
    assert lines(out) == [{"row": 1, "output": {}}, {"row": 2, "output": {"label": "b"}}]
    predict.PredictionsFile(str(out)).close()  # free again
