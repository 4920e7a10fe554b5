"""The frozen artifact: byte-stable round trip, tamper detection, runs without source,
warns when its source has changed, names the dataset row of every learned example."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import icldsl
from icldsl import artifact
from icldsl.cli import main
from icldsl.language.diagnostics import CheckError
from icldsl.language.compiler import compile_file, compile_source
from icldsl.runtime.program import Program
from icldsl.runtime.state import Demo, spec_and_states
from icldsl.language.source import Source
from tests.scripted import ScriptedLM, last_input

SOURCE = """
model Q { question: str "The question" }
model A { thinking: str  answer: float "The number" kind: enum("a", "b")? }
lm solver = "openai/gpt-x" { api_key: env("SOME_KEY"), temperature: 0.0 }
program p "Doc" { input q: Q  a = generate A from q instructions "Solve: é ✓"  output a }
"""


def trained_program() -> Program:
    source = Source("prog.icl", SOURCE)
    spec, states = spec_and_states(compile_source(source), "p")
    demo = Demo({"question": "1+1"}, {"thinking": "add", "answer": 2.0, "kind": None}, 1.0, "train.jsonl:7")
    states = {k: s.with_examples((demo,)) for k, s in states.items()}
    return Program(spec, states)


def write(tmp_path: Path, name: str = "a.json") -> Path:
    doc = artifact.freeze(trained_program(), source_file="prog.icl", source_sha256="0" * 64,
                          training={"scores": {"trained": 0.5}})
    return artifact.write(tmp_path / name, doc)


def test_write_load_write_gives_the_same_bytes(tmp_path: Path) -> None:
    first = write(tmp_path)
    program = icldsl.load(first)
    doc = artifact.freeze(program, source_file="prog.icl", source_sha256="0" * 64,
                          training=artifact.read(first)["training"])
    second = artifact.write(tmp_path / "b.json", doc)
    assert first.read_bytes() == second.read_bytes()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_artifact_holds_what_it_must(tmp_path: Path) -> None:
    doc = json.loads(write(tmp_path).read_text(encoding="utf-8"))
    assert doc["format_version"] == artifact.FORMAT_VERSION
    assert doc["source"] == {"file": "prog.icl", "sha256": "0" * 64}
    state = doc["states"]["p/a"]
    assert state["instructions"] == "Solve: é ✓"
    assert state["examples"][0]["origin"] == "train.jsonl:7"
    assert doc["program"]["lms"][0] == {"name": "solver", "target": "openai/gpt-x",
                                        "options": {"api_key": {"env": "SOME_KEY"}, "temperature": 0.0}}


def test_a_modified_artifact_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path)
    path.write_text(path.read_text(encoding="utf-8").replace("Solve:", "Solve!"), encoding="utf-8")
    with pytest.raises(artifact.ArtifactError, match="modified"):
        icldsl.load(path)


@pytest.mark.parametrize("content, message", [
    ("not json", "not JSON"),
    ('{"format": "other"}', "not an icldsl artifact"),
    ('{"format": "icldsl-artifact", "format_version": 99}', "format version 99"),
])
def test_unusable_files_are_refused_with_a_reason(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(artifact.ArtifactError, match=message):
        artifact.read(path)


def test_missing_file_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(artifact.ArtifactError, match="cannot read"):
        artifact.read(tmp_path / "none.json")


def test_a_loaded_artifact_runs_without_its_source(tmp_path: Path) -> None:
    path = write(tmp_path)
    lm = ScriptedLM(lambda r: {"thinking": "x", "answer": 4, "kind": "a"})
    program = icldsl.load(path, clients={"solver": lm})
    try:
        out = program(question="2+2")
    finally:
        program.close()
    assert out.answer == 4.0 and out.kind == "a"
    messages = lm.requests[0].messages
    assert len(messages) == 4 and messages[0].content.startswith("Solve: é ✓")


def sourced(tmp_path: Path, folder: str = ".") -> tuple[Path, Path]:
    """prog.icl in tmp_path and an artifact trained from it (it names `prog.icl`) in `folder`."""
    source = tmp_path / "prog.icl"
    source.write_text(SOURCE, encoding="utf-8")
    doc = artifact.freeze(trained_program(), source_file="prog.icl", source_sha256=Source.from_path(source).sha256,
                          training={})
    return source, artifact.write(tmp_path / folder / "a.json", doc)


def test_a_changed_source_beside_the_artifact_makes_it_stale(tmp_path: Path, monkeypatch) -> None:
    source, path = sourced(tmp_path)
    monkeypatch.chdir(tmp_path.parent)  # found beside the artifact, not in the working directory
    icldsl.load(path, check_source=True)  # unchanged: no warning (pytest turns warnings into errors)
    source.write_text(SOURCE.replace("Solve:", "Solve now:"), encoding="utf-8")
    with pytest.warns(artifact.StaleArtifactWarning, match=r"a\.json is stale: its source .*prog\.icl has changed"):
        icldsl.load(path, check_source=True)
    icldsl.load(path)  # not asked to look: the source is not read
    with pytest.warns(artifact.StaleArtifactWarning):
        icldsl.load(path, check_source=source)  # the artifact's source, named
    icldsl.load(path, check_source=tmp_path / "other.icl")  # not the artifact's source: not compared
    source.unlink()
    icldsl.load(path, check_source=True)  # deployed without its source: not stale


def test_a_changed_source_in_the_working_directory_makes_it_stale(tmp_path: Path, monkeypatch) -> None:
    source, path = sourced(tmp_path, "out")
    monkeypatch.chdir(tmp_path)
    source.write_text(SOURCE + "// changed\n", encoding="utf-8")
    with pytest.warns(artifact.StaleArtifactWarning):
        icldsl.load(path, check_source=True)
    monkeypatch.chdir(path.parent)  # neither beside the artifact nor here
    icldsl.load(path, check_source=True)


def test_a_verified_load_looks_at_the_source_by_default(tmp_path: Path, monkeypatch) -> None:
    source, path = sourced(tmp_path)
    key = "k" * 32
    artifact.write(path, artifact.sign(artifact.read(path), key.encode()))
    monkeypatch.chdir(tmp_path)
    source.write_text(SOURCE + "// changed\n", encoding="utf-8")
    with pytest.warns(artifact.StaleArtifactWarning):
        icldsl.load(path, verify=key)
    icldsl.load(path, verify=key, check_source=False)


def named_source(tmp_path: Path, name: str) -> Path:
    """An artifact in tmp_path whose `source.file` is `name`, with a sha256 no file has."""
    doc = artifact.freeze(trained_program(), source_file=name, source_sha256="1" * 64, training={})
    return artifact.write(tmp_path / "a.json", doc)


def loads_without_hanging(path: Path, **options) -> None:
    """`icldsl.load(path, **options)` in a thread that must end within 20 s (a hang fails the test
    instead of freezing the run), and no StaleArtifactWarning."""
    import threading
    import warnings

    outcome: list[object] = []

    def work() -> None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            icldsl.load(path, **options)
        outcome.append([str(w.message) for w in caught])

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(20)
    assert outcome == [[]], "load hung or warned"


def test_a_source_that_is_a_fifo_or_a_device_is_never_read(tmp_path: Path, monkeypatch) -> None:
    import os

    os.mkfifo(tmp_path / "prog.icl")  # opened for reading, a FIFO with no writer blocks
    path = named_source(tmp_path, "prog.icl")
    monkeypatch.chdir(tmp_path)
    loads_without_hanging(path)
    loads_without_hanging(path, check_source=True)
    loads_without_hanging(path, check_source=tmp_path / "prog.icl")
    for device in ("/dev/stdin", "/dev/zero", "/proc/self/fd/0", "/dev/fd/0"):
        loads_without_hanging(named_source(tmp_path, device), check_source=True)
    (tmp_path / "link.icl").symlink_to("/dev/zero")
    loads_without_hanging(named_source(tmp_path, "link.icl"), check_source=True)


def test_run_from_stdin_keeps_its_rows_whatever_source_the_artifact_names(tmp_path: Path) -> None:
    """`source.file` = /dev/stdin used to swallow the rows of `run --input -`, signed or not."""
    import os
    import subprocess
    import sys

    from tests.loopback import LoopbackServer

    key = "k" * 32
    text = SOURCE.replace('"openai/gpt-x" { api_key: env("SOME_KEY"), ', '"openai/x" {{ base_url: "{url}", ')
    root = Path(__file__).resolve().parents[1]
    answer = {"thinking": "", "answer": 1.0, "kind": "a"}
    with LoopbackServer(lambda request: answer) as server:
        compiled = compile_source(Source("prog.icl", text.replace("{{", "{").replace("{url}", server.openai_url)))
        doc = artifact.freeze(Program(*spec_and_states(compiled, "p")), source_file="/dev/stdin",
                              source_sha256="1" * 64, training={})
        path = artifact.write(tmp_path / "a.json", artifact.sign(doc, key.encode()))
        rows = "".join(json.dumps({"question": f"{i}+1"}) + "\n" for i in range(3))
        for verify in ([], ["--verify"]):
            done = subprocess.run([sys.executable, "-m", "icldsl", "run", str(path), "--input", "-", "-q",
                                   "--no-cache", *verify], input=rows, capture_output=True, text=True, timeout=60,
                                  cwd=root, env={**os.environ, "ICLDSL_SIGNING_KEY": key, "PYTHONPATH": str(root)})
            assert done.returncode == 0, done.stderr
            assert sorted(json.loads(line)["row"] for line in done.stdout.splitlines()) == [1, 2, 3]


def test_the_cli_says_an_artifact_is_stale_on_stderr(tmp_path: Path, monkeypatch, capsys) -> None:
    source, path = sourced(tmp_path)
    monkeypatch.chdir(tmp_path)
    source.write_text(SOURCE.replace("Solve:", "Solve now:"), encoding="utf-8")
    assert main(["render", "prog.icl", "--artifact", str(path), "--input", '{"question": "1+1"}']) == 0
    captured = capsys.readouterr()
    (line,) = [line for line in captured.err.splitlines() if line.startswith("warning: ")]
    assert "is stale" in line and "fit it again" in line
    assert "Solve: é ✓" in captured.out  # the artifact's instructions are still the ones used


def test_every_learned_example_names_its_dataset_and_row(tmp_path: Path) -> None:
    rows = [{"question": f"{i}+{i}", "thinking": "add", "answer": 2 * i, "kind": "a"} for i in range(12)]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    text = SOURCE + """
data sums = jsonl("rows.jsonl", split: 0.75)
train p on sums { reward exact_match(in_mask: ["answer"])  optimizer random_few_shot(nb_max_examples: 3)  batch_size 4 }
"""
    (tmp_path / "prog.icl").write_text(text, encoding="utf-8")
    compiled = compile_file(tmp_path / "prog.icl")

    def answer(request) -> dict:
        a, b = last_input(request)["question"].split("+")
        return {"thinking": "", "answer": float(a) + float(b) if len(request.messages) > 2 else -1.0, "kind": "a"}

    report = icldsl.fit(compiled, clients={"solver": ScriptedLM(answer)}, write=False, report=False).report
    examples = report.artifact["states"]["p/a"]["examples"]
    assert examples and all(re.fullmatch(r"sums:rows\.jsonl:\d+", e["origin"]) for e in examples)
    for example in examples:  # the row its origin names is the one it was made from
        assert rows[int(example["origin"].rsplit(":", 1)[1]) - 1]["question"] == example["inputs"]["question"]


PATTERNED = """
model Q { question: str(pattern: "{pattern}") }
model A { answer: float }
lm solver = "openai/gpt-x" { temperature: 0.0 }
program p { input q: Q  a = generate A from q  output a }
"""


@pytest.mark.parametrize("pattern, reason", [
    ("^(?=a)(a+)+$", "look-around, including look-ahead and look-behind, is not supported (at character 2)"),
    ("(a{1000}){1000}", "Compiled regex exceeds size limit of 10485760 bytes"),
    ("(a)\\\\1", "backreferences are not supported (at character 4)"),
])
def test_a_pattern_the_runtime_cannot_build_is_a_diagnostic_and_an_artifact_error(
        tmp_path: Path, pattern: str, reason: str) -> None:
    with pytest.raises(CheckError) as info:
        compile_source(Source("p.icl", PATTERNED.replace("{pattern}", pattern)))
    (d,) = info.value.diagnostics
    assert (d.code, d.message, d.span.line, d.span.column) == \
        ("invalid-value", f"`pattern` cannot be used: {reason}", 2, 34)
    path = write(tmp_path)
    doc = artifact.read(path)
    doc["program"]["models"][0]["fields"][0]["type"] = {"constrained": "str", "pattern": pattern.replace("\\\\", "\\")}
    doc[artifact.HASH_KEY] = artifact.content_hash(doc)
    artifact.write(path, doc)
    with pytest.raises(artifact.ArtifactError, match=re.escape(f"cannot be used: {reason}")):
        icldsl.load(path)


def test_a_pattern_python_refuses_but_the_runtime_runs_is_accepted() -> None:
    spec, states = spec_and_states(compile_source(Source("p.icl", PATTERNED.replace("{pattern}", "^\\\\pL+$"))), "p")
    program = Program(spec, states, clients={"solver": ScriptedLM(lambda r: {"answer": 1})})
    try:
        assert program(question="été").answer == 1.0
        with pytest.raises(Exception, match="String should match pattern"):
            program(question="2+2")
    finally:
        program.close()
