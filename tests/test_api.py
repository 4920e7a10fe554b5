"""The public API (`icldsl.__all__`, docs/python-api.md): its names, and `check` and `compile`,
which do what `icldsl check` and `icldsl render` do with a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import icldsl
from icldsl.cli import main
from tests.scripted import ScriptedLM, last_input

PUBLIC = [
    "Error", "ArtifactError", "CacheError", "CallsMissing", "CheckError", "Checked", "DataError", "Diagnostic",
    "FitFailed", "Fitted", "InvalidInput", "JSONLTrace", "LMCache", "LMConfigError", "NoProgram", "NoTrainBlock",
    "OTelTrace", "Prediction", "PredictionError", "Program", "StaleArtifactWarning", "ToolError", "afit", "check",
    "compile", "fit", "load",
]

PROGRAM = """
model Sum { question: str "Two numbers to add, like 2+3" }
model Total { answer: float "Their sum" }
model Unused { x: int }
lm solver = "openai/loopback" { base_url: "http://127.0.0.1:9/v1", max_tokens: 50 }
program adder { input q: Sum  total = generate Total from q  output total }
data sums = jsonl("train.jsonl")
train adder on sums {
    reward exact_match(in_mask: ["answer"])
    optimizer random_few_shot(nb_max_examples: 2)
}
"""


def test_the_public_names_are_these_and_each_resolves() -> None:
    assert icldsl.__all__ == PUBLIC
    for name in PUBLIC:
        assert getattr(icldsl, name).__name__ == name
    for name in PUBLIC:
        value = getattr(icldsl, name)
        if isinstance(value, type) and name.endswith(("Error", "Missing", "Failed", "Input", "Program", "Block")) \
                and name != "Program":
            assert issubclass(value, icldsl.Error), name  # `except icldsl.Error` catches every one
    assert issubclass(icldsl.StaleArtifactWarning, UserWarning)
    assert set(PUBLIC) <= set(dir(icldsl))


def test_the_python_api_page_lists_and_documents_every_public_name() -> None:
    page = (Path(__file__).resolve().parents[1] / "docs" / "python-api.md").read_text(encoding="utf-8")
    table = page.split("## Checking and compiling")[0]
    documented = {line.rsplit(".", 1)[1] for line in page.splitlines() if line.startswith("::: ")}
    for name in PUBLIC:
        assert f"`{name}`" in table, name
    assert documented == set(PUBLIC)
    for line in page.splitlines():  # each reference names the module that defines the public name
        if line.startswith("::: "):
            module, name = line[4:].rsplit(".", 1)
            assert getattr(icldsl, name).__module__ == module, line


def test_a_name_that_is_not_public_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'parse'"):
        icldsl.parse  # noqa: B018  (the IR is internal: docs/python-api.md)


@pytest.fixture
def adder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "adder.icl").write_text(PROGRAM, encoding="utf-8")
    return tmp_path / "adder.icl"


def test_check_returns_what_icldsl_check_prints(adder: Path, capsys: pytest.CaptureFixture) -> None:
    checked = icldsl.check(adder)  # train.jsonl is missing: the data is checked, as the command does
    assert not checked.ok and checked.file == str(adder)
    assert [(d.code, d.severity) for d in checked.diagnostics] == [("missing-data", "error"),
                                                                    ("unused-name", "warning")]
    assert checked.errors == checked.diagnostics[:1] and checked.warnings == checked.diagnostics[1:]

    assert main(["check", str(adder)]) == 1
    assert capsys.readouterr().err == checked.render() + f"{adder}: 1 error, not compiled\n"
    assert main(["check", "--format", "concise", str(adder)]) == 1
    assert capsys.readouterr().err == checked.render(concise=True) + f"{adder}: 1 error, not compiled\n"
    assert main(["check", "--format", "json", str(adder)]) == 1
    assert json.loads(capsys.readouterr().out)["files"] == [checked.to_json()]

    unchecked = icldsl.check(adder, data=False)  # `icldsl check --no-data`
    assert unchecked.ok and [d.code for d in unchecked.diagnostics] == ["unused-name"]
    assert main(["check", "--no-data", "--format", "json", str(adder)]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == [unchecked.to_json()]


def test_check_of_text_reads_it_as_that_file(adder: Path) -> None:
    (adder.parent / "train.jsonl").write_text('{"question": "1+2", "answer": 3}\n', encoding="utf-8")
    assert icldsl.check(adder).warnings and icldsl.check(adder).ok  # the data file is found beside it
    checked = icldsl.check(adder, text=PROGRAM.replace("question: str", "question: strr"))
    (error,) = checked.errors
    assert error.code == "undefined-name" and error.span.file == str(adder) and error.span.line == 2
    assert "help: did you mean `str`?" in checked.render()
    assert icldsl.check(adder, text=PROGRAM.replace("model Unused { x: int }", "")).diagnostics == ()


def test_compile_gives_the_files_program_untrained(adder: Path) -> None:
    lm = ScriptedLM(lambda request: {"answer": sum(map(float, last_input(request)["question"].split("+")))})
    program = icldsl.compile(adder, clients={"solver": lm})
    assert isinstance(program, icldsl.Program) and program.spec.name == "adder"
    try:
        assert program(question="2+3").answer == 5.0
    finally:
        program.close()
    assert len(lm.requests[0].messages) == 2  # the file's instructions and the input: no examples yet
    same = icldsl.compile("elsewhere.icl", text=adder.read_text(encoding="utf-8"), program="adder",
                          clients={"solver": lm})
    try:
        assert same(question="4+4").answer == 8.0
    finally:
        same.close()


def test_compile_refuses_a_file_with_errors_or_without_the_program(adder: Path) -> None:
    with pytest.raises(icldsl.NoProgram, match=r"has no program `subtractor` \(its programs: `adder`\)"):
        icldsl.compile(adder, program="subtractor")
    with pytest.raises(icldsl.CheckError) as info:
        icldsl.compile(adder, text=PROGRAM.replace("Total from q", "Totl from q"))
    assert [d.code for d in info.value.diagnostics if d.severity == "error"] == ["undefined-name"]
