"""Each failure of issue 16, as the command line now reports it: a message naming the file
and line (or the part) and exit status 1, never a traceback and never a half-done job."""

from __future__ import annotations

from pathlib import Path

import pytest

import icldsl
from icldsl import artifact
from icldsl.cli import main
from icldsl.language.compiler import compile_source
from icldsl.language.diagnostics import CheckError
from icldsl.paths import BadEncoding, decode_utf8
from icldsl.language.source import Source
from icldsl.runtime.state import spec_and_states
from tests.loopback import Reply
from tests.adder import PROGRAM, answer_with_examples_only
from tests.test_trust import agent_artifact


def refused(argv: list[str], capsys) -> str:
    """Run the command; it must exit 1 without a traceback; its stderr."""
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# ---- artifacts --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ('{"a": ' * 3000 + "1" + "}" * 3000, "a.json:1: not JSON an artifact may hold: nested more than 100 levels deep"),
    ('{"format": "icldsl-artifact",\n "x": NaN}', "a.json:2: not JSON an artifact may hold: NaN is not a JSON number"),
    ('{"format": 1e999}', "not JSON an artifact may hold: the number 1e999 is too large for a float"),
    ("\n\n\xff", "a.json:3: not an artifact: byte 0xff at column 1 is not UTF-8"),
])
def test_an_artifact_that_is_not_json_icldsl_accepts_is_refused(tmp_path, capsys, text: str, message: str) -> None:
    path = tmp_path / "a.json"
    path.write_bytes(text.encode("latin-1"))
    assert message in refused(["run", str(path), "--input", "{}"], capsys)


def test_run_reads_no_further_than_an_artifact_may_be(capsys) -> None:
    assert "cannot read /dev/zero: larger than 64 MB" in refused(["run", "/dev/zero", "--input", "{}"], capsys)


def edited(tmp_path: Path, change) -> Path:
    """A valid artifact changed by `change(doc)` and hashed again, as a hand edit would be."""
    path = agent_artifact(tmp_path, "icldsl.tools:calculator")
    doc = artifact.read(path)
    change(doc)
    doc[artifact.HASH_KEY] = artifact.content_hash(doc)
    return artifact.write(path, doc)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(states=[]), "cannot run: states: Input should be a valid dictionary"),
    (lambda d: d.update(states={}), "cannot run: step `p/a`: no learned state (instructions and examples) for it"),
    (lambda d: d["program"]["lms"][0].update(target="local/smollm2-135m", options={"base_url": "http://h"}),
     "cannot run: lm `m`: local has no option `base_url`"),
    (lambda d: d["program"]["lms"][0].update(target=7), "cannot run: program.lms.0.target: Input should be a valid string"),
    (lambda d: d["program"]["steps"][0].update(sources=["nowhere"]), "step `p/a`: reads `nowhere`, which no earlier"),
    (lambda d: d["program"]["models"][0]["fields"][0].update(type={"list": "complex"}), "unknown type 'complex'"),
    (lambda d: d["program"]["tools"][0].update(ref="os.system"), "'os.system' is not of the form"),
    (lambda d: d["program"]["lms"][0].update(target="openai/m", options={"max_concurrency": 1_000_000_000}),
     "cannot run: lm `m`: option `max_concurrency` must be an integer from 1 to 1024"),
    (lambda d: d["program"]["lms"][0].update(target="openai/m", options={"base_url": ["http://h/v1", "http://b:pw@h/v1"]}),
     "cannot run: lm `m`: option `base_url` holds credentials in a URL"),
])
def test_an_edited_artifact_that_could_not_run_is_refused_when_loaded(tmp_path, capsys, change, message) -> None:
    path = edited(tmp_path, change)
    assert message in refused(["run", str(path), "--input", '{"question": "1"}'], capsys)


def test_an_artifact_whose_source_entry_is_not_an_object_still_loads(tmp_path) -> None:
    path = edited(tmp_path, lambda d: d.update(source="x"))
    assert icldsl.load(path).spec.name == "p"


# ---- data -------------------------------------------------------------------------------------


@pytest.fixture
def adder(project, monkeypatch):
    """test_cli's adder project, as the working directory."""
    monkeypatch.chdir(project[0])
    return project


@pytest.mark.parametrize("line, message", [
    (b'{"question": "1+1", "answer": NaN}', "train.jsonl:13: invalid JSON: NaN is not a JSON number (column 31)"),
    (b'{"question": "1+1", "answer": -Infinity}', "train.jsonl:13: invalid JSON: Infinity is not a JSON number"),
    (b'{"question": ' + b"[" * 500 + b"]" * 500 + b', "answer": 2}', "train.jsonl:13: invalid JSON: nested more than 100"),
    (b'{"question": "1\xff1", "answer": 2}', "train.jsonl:13: byte 0xff at column 16 is not UTF-8"),
])
def test_a_bad_data_row_is_refused_by_file_and_line_before_any_lm_call(adder, capsys, line, message) -> None:
    folder, server = adder
    with open(folder / "train.jsonl", "ab") as f:
        f.write(line + b"\n")
    assert message in refused(["fit", "adder.icl", "-q"], capsys)
    assert server.requests == [] and not (folder / "adder.artifact.json").exists()


@pytest.mark.parametrize("data, line, column", [
    (b"ab\n\xef\xbb\xbf\xff", 2, 2),  # a byte order mark inside the text is a character
    (b"\xef\xbb\xbfab\xff", 1, 3),  # a leading one is not
    ("\u00e9t\u00e9\n".encode() * 2 + "x\u00e9".encode() + b"\xff", 3, 3),  # columns count characters
])
def test_a_byte_that_is_not_utf8_is_placed_by_line_and_column(data: bytes, line: int, column: int) -> None:
    with pytest.raises(BadEncoding) as caught:
        decode_utf8(data)
    assert (caught.value.line, caught.value.column) == (line, column)


def test_a_csv_cell_that_reads_as_a_non_finite_number_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "rows.csv").write_text("question,answer\n1+1,2\n2+2,nan\n", encoding="utf-8")
    (tmp_path / "p.icl").write_text(PROGRAM.format(url="http://127.0.0.1:9/v1").replace(
        'jsonl("train.jsonl", test: "test.jsonl")', 'csv("rows.csv")'), encoding="utf-8")
    assert "rows.csv:3: output field 'answer': nan is not a finite number" in refused(["plan", str(tmp_path / "p.icl")],
                                                                                         capsys)


# ---- the language -----------------------------------------------------------------------------


def test_a_file_larger_than_an_icl_file_may_be_is_refused(tmp_path, capsys) -> None:
    path = tmp_path / "big.icl"
    path.write_text('model A { x: str "' + "a" * (4 * 2**20) + '" }\n', encoding="utf-8")
    assert "cannot read" in refused(["check", str(path)], capsys)


@pytest.mark.parametrize("imported", [False, True], ids=["the file", "a file it imports"])
def test_a_byte_that_is_not_utf8_in_an_icl_file_is_a_diagnostic_where_it_stands(tmp_path, capsys, imported) -> None:
    bad = tmp_path / ("models.icl" if imported else "p.icl")
    bad.write_bytes(b'model A {\n  x: str "caf\xe9 au lait"\n}\n')
    if imported:
        (tmp_path / "p.icl").write_text('import "models.icl"\n', encoding="utf-8")
    err = refused(["check", str(tmp_path / "p.icl")], capsys)
    assert "error[syntax-error]: byte 0xe9 is not UTF-8" in err and f"{bad}:2:14" in err


def test_a_chain_of_thousands_of_models_is_a_diagnostic() -> None:
    n = 3000
    text = "".join(f"model M{i} {{ x: M{i + 1} }}\n" for i in range(n)) + f"model M{n} {{ x: str }}\n"
    with pytest.raises(CheckError) as caught:
        compile_source(Source("chain.icl", text))
    [d] = [d for d in caught.value.diagnostics if d.severity == "error"]
    assert (d.code, d.message) == ("nesting-too-deep", "model `M0` nests models 3001 levels deep, more than 64")


# ---- a fit whose calls fail -------------------------------------------------------------------


def test_a_fit_where_every_call_is_refused_stops_before_training_and_says_why(adder, capsys) -> None:
    folder, server = adder
    server.script = lambda request: Reply(status=401, body={"error": {"message": "Incorrect API key provided"}})
    err = refused(["fit", "adder.icl", "-q"], capsys)
    assert "error: 4 of 4 test predictions of the untrained program failed" in err
    assert "401" in err and "Incorrect API key provided" in err
    assert "training did not start" in err
    assert len(server.requests) == 4 and not (folder / "adder.artifact.json").exists()


def test_a_fit_where_most_predictions_failed_writes_no_artifact(adder, capsys) -> None:
    folder, server = adder
    answered = []

    def broken_after_one(request):  # one untrained prediction works, so training starts
        answered.append(request)
        if len(answered) == 1:
            return answer_with_examples_only(request)
        return Reply(status=400, body={"error": {"message": "context length exceeded"}})

    server.script = broken_after_one
    err = refused(["fit", "adder.icl", "-q"], capsys)
    # The trained program kept the untrained states, so its first prediction came from the cache.
    assert "error: 6 of 8 test predictions failed; the most common failure (6 times): " in err
    assert "context length exceeded" in err and "more than 50% failed, so no artifact was written" in err
    assert not (folder / "adder.artifact.json").exists()


# ---- caps on what is in flight ----------------------------------------------------------------


def test_concurrency_beyond_the_maximum_is_refused_in_a_file_a_flag_and_python(tmp_path, capsys) -> None:
    from icldsl.language.options import MAX_CONCURRENCY
    from icldsl.runtime.program import Program
    from tests.scripted import ScriptedLM

    source = ('model Q { question: str }\nmodel A { answer: float }\n'
              'lm solver = "openai/gpt-x" { max_concurrency: 1000000000 }\n'
              'program p { input q: Q  a = generate A from q  output a }\n')
    with pytest.raises(CheckError) as info:
        compile_source(Source("p.icl", source))
    (d,) = info.value.diagnostics
    assert (d.code, d.message, d.span.line, d.span.column) == (
        "invalid-value", f"option `max_concurrency` of lm `solver` (openai) must be an integer from 1 to {MAX_CONCURRENCY}",
        3, 47)
    train = source.replace("1000000000", "8") + 'data d = gsm8k()\ntrain p on d { reward exact_match() ' \
        'optimizer random_few_shot()  concurrency 5000 }\n'
    with pytest.raises(CheckError) as info:
        compile_source(Source("p.icl", train))
    assert [d.message for d in info.value.diagnostics] == [f"`concurrency` must be at most {MAX_CONCURRENCY}"]

    with pytest.raises(SystemExit):
        main(["run", "a.json", "--input", "{}", "--concurrency", "100000000"])
    assert f"at most {MAX_CONCURRENCY} rows may be in flight at once, got '100000000'" in capsys.readouterr().err

    spec, states = spec_and_states(compile_source(Source("p.icl", source.replace("1000000000", "8"))), "p")
    program = Program(spec, states, clients={"solver": ScriptedLM(lambda r: {"answer": 1})})
    with pytest.raises(ValueError, match=f"concurrency must be from 1 to {MAX_CONCURRENCY}, got 100000000"):
        program.prepare(100_000_000)
    program.close()
