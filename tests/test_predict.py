"""`icldsl run ARTIFACT --input FILE --output FILE` against a loopback server: a line per
row (prediction or error, with its row number), bad input named without a traceback,
nothing written lost, and a run that is interrupted or re-run does each row once."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from icldsl import artifact, predict
from icldsl.cli import main
from icldsl.language.compiler import compile_source
from icldsl.runtime.program import Program
from icldsl.language.source import Source
from icldsl.runtime.state import spec_and_states
from tests.loopback import FORMATS, LoopbackServer, Reply

ROOT = Path(__file__).resolve().parents[1]

SOURCE = """
model Item {{ name: str  tags: list[str]  count: int?  }}
model Label {{ label: str }}
lm m = "openai/x" {{ base_url: {urls}, max_retries: {retries} }}
program tagger {{ input item: Item  label = generate Label from item  output label }}
"""


def write_artifact(path: Path, urls: list[str], retries: int = 1) -> Path:
    """A frozen artifact of SOURCE (untrained) whose LM is at `urls`."""
    source = Source("tagger.icl", SOURCE.format(urls=json.dumps(urls), retries=retries))
    spec, states = spec_and_states(compile_source(source), "tagger")
    doc = artifact.freeze(Program(spec, states), source_file="tagger.icl", source_sha256=source.sha256, training={})
    return artifact.write(path, doc)


def label(request) -> dict:
    """The label: the item's name, upper-cased, and its number of tags."""
    item = json.loads(request.last_user_message)
    return {"label": f"{item['name'].upper()}/{len(item['tags'])}"}


def slow(delay: float):
    def answer(request) -> Reply:
        return replace(FORMATS[request.path](json.dumps(label(request)), request), delay=delay)
    return answer


def run_command(tmp_path: Path, server: LoopbackServer, n: int, concurrency: int) -> tuple[list[str], dict]:
    """An artifact on `server` and `n` rows beside it: the `icldsl run` command line over them
    (output p.jsonl) and the environment that runs this tree's icldsl."""
    path = write_artifact(tmp_path / "t.artifact.json", [server.openai_url])
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"name": f"n{i}", "tags": []}) + "\n"
                                                 for i in range(n)))
    command = [sys.executable, "-m", "icldsl", "run", str(path), "--input", "rows.jsonl", "--output",
               "p.jsonl", "--concurrency", str(concurrency), "-q", "--no-cache"]
    return command, {**os.environ, "PYTHONPATH": str(ROOT)}


def lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    with LoopbackServer(label) as server:
        write_artifact(tmp_path / "t.artifact.json", [server.openai_url])
        yield tmp_path, server


def test_every_row_gets_a_line_and_bad_rows_say_why(served, capsys) -> None:
    tmp_path, server = served
    rows = [json.dumps({"name": f"n{i}", "tags": ["a"] * (i % 3), "key": f"k{i}"}) for i in range(20)]
    rows[4] = '{"name": "broken", '
    rows[9] = json.dumps({"name": "no tags"})
    rows[11] = "[1, 2]"
    (tmp_path / "rows.jsonl").write_text("\n".join(rows[:15]) + "\n\n" + "\n".join(rows[15:]) + "\n")

    code = main(["run", "t.artifact.json", "--input", "rows.jsonl", "--output", "preds.jsonl", "--id", "key",
                 "--concurrency", "4", "--no-cache"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    got = {line["row"]: line for line in lines(tmp_path / "preds.jsonl")}
    assert sorted(got) == list(range(1, 21))
    assert got[1] == {"row": 1, "id": "k0", "output": {"label": "N0/0"}}
    assert got[20]["output"] == {"label": "N19/1"} and got[20]["id"] == "k19"
    assert got[5]["error"].startswith("line 5 is not JSON")
    assert got[10] == {"row": 10, "error": "line 10: input field 'tags': Field required"}
    assert got[12]["error"] == "line 12 is not a JSON object"
    assert "ran 20 rows" in err and "17 predicted, 3 failed" in err and "row 5: line 5 is not JSON" in err
    assert "3 rows failed" in err
    assert len(server.requests) == 17


def test_the_garbage_collector_waits_longer_during_a_run_and_is_set_back_after(served, monkeypatch) -> None:
    tmp_path, _ = served
    (tmp_path / "rows.jsonl").write_text(json.dumps({"name": "a", "tags": []}) + "\n")
    before, seen = gc.get_threshold(), []
    run_rows = predict.run_rows

    async def watched(*args, **kwargs):
        seen.append((gc.get_threshold(), gc.get_freeze_count()))
        return await run_rows(*args, **kwargs)

    monkeypatch.setattr(predict, "run_rows", watched)
    assert main(["run", "t.artifact.json", "--input", "rows.jsonl", "--output", "preds.jsonl", "--concurrency", "64",
                 "--no-cache"]) == 0
    [(threshold, frozen)] = seen
    assert threshold == (max(before[0], 6400), *before[1:]) and frozen > 0
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_csv_cells_become_the_fields_types(served, capsys) -> None:
    tmp_path, _ = served
    (tmp_path / "rows.csv").write_text('name,tags,count\nx,"[""a"", ""b""]",\ny,[],3\nz,not a list,1\n')
    assert main(["run", "t.artifact.json", "--input", "rows.csv", "--output", "p.jsonl", "-q", "--no-cache"]) == 1
    got = {line["row"]: line for line in lines(tmp_path / "p.jsonl")}
    assert got[1]["output"] == {"label": "X/2"} and got[2]["output"] == {"label": "Y/0"}
    assert got[3]["error"].startswith("line 4: input field 'tags'")


@pytest.mark.parametrize("name, content, message", [
    ("rows.csv", "name,count\nx,1\n", "no column for input field 'tags'"),
    ("rows.jsonl", "", "no rows: the input is empty"),
    ("rows.csv", "", "no rows: the input is empty"),
])
def test_an_input_that_cannot_run_at_all_is_a_message(served, capsys, name, content, message) -> None:
    tmp_path, server = served
    (tmp_path / name).write_text(content)
    assert main(["run", "t.artifact.json", "--input", name, "--output", "p.jsonl", "-q"]) == 1
    err = capsys.readouterr().err
    assert message in err and f"{name}" in err and "Traceback" not in err
    assert not server.requests and (tmp_path / "p.jsonl").read_text() == ""


def test_a_tampered_artifact_or_missing_input_is_a_message(served, capsys) -> None:
    tmp_path, _ = served
    assert main(["run", "t.artifact.json", "--input", "none.jsonl", "--output", "p.jsonl"]) == 1
    assert "cannot read none.jsonl" in capsys.readouterr().err
    doc = json.loads((tmp_path / "t.artifact.json").read_text())
    doc["states"]["tagger/label"]["instructions"] = "changed"
    (tmp_path / "t.artifact.json").write_text(json.dumps(doc))
    (tmp_path / "rows.jsonl").write_text('{"name": "a", "tags": []}\n')
    assert main(["run", "t.artifact.json", "--input", "rows.jsonl", "--output", "p.jsonl"]) == 1
    err = capsys.readouterr().err
    assert "has been modified since it was written" in err and "Traceback" not in err


def test_a_rerun_skips_what_is_written_cuts_a_torn_line_and_retries_failures(served, capsys) -> None:
    tmp_path, server = served
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"name": f"n{i}", "tags": []}) + "\n" for i in range(10)))
    (tmp_path / "p.jsonl").write_text('{"row": 2, "output": {"label": "kept"}}\n{"row": 3, "error": "it failed"}\n'
                                      '{"row": 4, "outp')
    assert main(["run", "t.artifact.json", "--input", "rows.jsonl", "--output", "p.jsonl", "--no-cache"]) == 1
    err = capsys.readouterr().err
    assert "cut a torn last line (16 bytes)" in err and "holds 2 rows already" in err
    got = lines(tmp_path / "p.jsonl")
    assert sorted(line["row"] for line in got) == list(range(1, 11))
    assert got[0]["output"] == {"label": "kept"} and len(server.requests) == 8
    assert "1 row failed" in err  # row 3, from the first run

    assert main(["run", "t.artifact.json", "--input", "rows.jsonl", "--output", "p.jsonl", "--retry-failed",
                 "--no-cache"]) == 0
    got = lines(tmp_path / "p.jsonl")
    assert sorted(line["row"] for line in got) == list(range(1, 11)) and all("output" in line for line in got)
    assert len(server.requests) == 9

    (tmp_path / "other.jsonl").write_text('{"something": "else"}\n')
    assert main(["run", "t.artifact.json", "--input", "rows.jsonl", "--output", "other.jsonl"]) == 1
    assert "other.jsonl: line 1 is not a prediction of `icldsl run`" in capsys.readouterr().err


def test_stdin_to_stdout() -> None:
    with LoopbackServer(label) as server:
        path = write_artifact(Path(os.environ["ICLDSL_CACHE_DIR"]) / "t.artifact.json", [server.openai_url])
        rows = "".join(json.dumps({"name": f"n{i}", "tags": []}) + "\n" for i in range(3))
        result = subprocess.run([sys.executable, "-m", "icldsl", "run", str(path), "--input", "-", "-q"],
                                input=rows, capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(line)["row"] for line in result.stdout.splitlines()) == [1, 2, 3]


def test_unreachable_endpoints_stop_the_run_with_a_message(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    with LoopbackServer() as a, LoopbackServer() as b:
        urls = [a.openai_url, b.openai_url]
    write_artifact(tmp_path / "t.artifact.json", urls, retries=0)  # nothing listens there any more
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"name": "x", "tags": []}) + "\n" for _ in range(50)))
    assert main(["run", "t.artifact.json", "--input", "rows.jsonl", "--output", "p.jsonl", "--stop-after", "5",
                 "--concurrency", "2", "-q"]) == 1
    err = capsys.readouterr().err
    assert "stopped early: the last 5 rows all failed" in err and "ConnectError" in err and "Traceback" not in err
    written = lines(tmp_path / "p.jsonl")
    assert 5 <= len(written) < 50 and all("error" in line for line in written)


def test_an_interrupted_run_resumes_and_does_every_row_once(tmp_path: Path) -> None:
    n = 300
    with LoopbackServer(slow(0.02)) as server:
        command, env = run_command(tmp_path, server, n, concurrency=8)
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not (tmp_path / "p.jsonl").exists()
                                               or (tmp_path / "p.jsonl").read_text().count("\n") < 40):
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 130, err
        assert "run the same command again" in err and "Traceback" not in err
        first = lines(tmp_path / "p.jsonl")
        assert 40 <= len(first) < n and len({line["row"] for line in first}) == len(first)
        sent_first = len(server.requests)

        done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"{len(first)} already in p.jsonl" in done.stderr
    final = lines(tmp_path / "p.jsonl")
    assert sorted(line["row"] for line in final) == list(range(1, n + 1))  # each row once: none lost
    assert all(line["output"]["label"] == f"N{line['row'] - 1}/0" for line in final)
    assert len(server.requests) - sent_first == n - len(first)  # the second run asked only for the rest
