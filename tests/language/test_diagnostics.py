"""Golden diagnostic tests: every tests/golden/errors/*.icl has its rendered
diagnostics beside it, and every registered code has at least one case."""

from __future__ import annotations

from pathlib import Path

import pytest

from icldsl.datafiles import check_data_files
from icldsl.language.compiler import check_module
from icldsl.language.diagnostics import (CODES, CheckError, Diagnostic, render_all, render_concise, render_github, sort_key,
                                to_json)
from icldsl.language.imports import load_module
from icldsl.language.source import Source
from tests.golden import assert_golden

CASES = sorted((Path(__file__).resolve().parents[1] / "golden" / "errors").glob("*.icl"))


def diagnose(source: Source) -> tuple[list[Diagnostic], dict[str, Source]]:
    """Every diagnostic of a file (imports followed, data files opened), and the sources they point into."""
    try:
        module, sources = load_module(source)
        found = check_module(module, Path(source.name).resolve().parent, checks=(check_data_files,))
        return sorted(found, key=sort_key), sources
    except CheckError as exc:
        return sorted(exc.diagnostics, key=sort_key), {source.name: source, **exc.sources}


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_error_golden(case: Path, update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(case.parent.parent)  # names are shown relative to tests/golden
    source = Source(f"{case.parent.name}/{case.name}", case.read_text(encoding="utf-8"))
    diagnostics, sources = diagnose(source)
    assert diagnostics, "a golden error case must produce diagnostics"
    # A case is named after the code it shows, optionally `--variant`.
    assert case.stem.split("--")[0] in {d.code for d in diagnostics}
    text = "\n\n".join(render_all(diagnostics, sources)) + "\n"
    assert_golden(text, case.with_suffix(".txt"), update_golden)


def test_every_code_has_a_case() -> None:
    covered = set()
    for case in CASES:
        covered |= {d.code for d in diagnose(Source(str(case), case.read_text(encoding="utf-8")))[0]}
    assert covered == set(CODES)


def test_concise_format_is_one_line_each() -> None:
    case = next(c for c in CASES if c.stem == "unknown-field")
    source = Source("unknown-field.icl", case.read_text(encoding="utf-8"))
    lines = [render_concise(d) for d in diagnose(source)[0]]
    assert lines == [
        "unknown-field.icl:14:38: error[unknown-field]: model `NumericalAnswerWithThinking` has no field "
        "`anwser` (did you mean `answer`?)"
    ]


def test_all_errors_are_gathered_at_once() -> None:
    case = next(c for c in CASES if c.stem == "undefined-name")
    diagnostics, _ = diagnose(Source(case.name, case.read_text(encoding="utf-8")))
    assert sum(d.code == "undefined-name" for d in diagnostics) >= 6


def test_json_form_names_code_place_and_help() -> None:
    case = next(c for c in CASES if c.stem == "unknown-field")
    source = Source("unknown-field.icl", case.read_text(encoding="utf-8"))
    diagnostics, sources = diagnose(source)
    assert [to_json(d, sources) for d in diagnostics] == [{
        "code": "unknown-field", "severity": "error",
        "message": "model `NumericalAnswerWithThinking` has no field `anwser`",
        "label": "not a field of the program's output", "help": "did you mean `answer`?",
        "file": "unknown-field.icl", "start": {"line": 14, "column": 38}, "end": {"line": 14, "column": 46},
    }]


def test_github_annotation_escapes_what_would_end_its_fields() -> None:
    source = Source("dir,with:odd%name.icl", 'model A {\n    x: strr "a"\n}\n')
    diagnostics, sources = diagnose(source)
    unknown = next(d for d in diagnostics if d.code == "undefined-name")
    assert render_github(unknown, sources) == (
        "::error file=dir%2Cwith%3Aodd%25name.icl,line=2,col=8,endLine=2,endColumn=12,"
        "title=icldsl undefined-name::unknown type `strr`%0Ahelp: did you mean `str`?")
    unused = next(d for d in diagnostics if d.code == "unused-name")
    assert render_github(unused, sources).startswith("::warning file=")


def test_a_secret_is_masked_in_every_excerpt_of_its_line() -> None:
    source = Source("t.icl", 'model Q { question: str }\nmodel A { answer: float }\n'
                    'lm solver = "openai/gpt-4.1-mini" { api_key: "sk-live-123456", tempreature: 0.1, '
                    'base_url: ["http://a/v1", "http://bob:hunter22@b/v1"] }\n'
                    'program p { input q: Q  a = generate A from q using solver  output a }\n')
    diagnostics, sources = diagnose(source)
    assert {d.code for d in diagnostics} == {"secret-in-source", "unknown-option"}
    rendered = render_all(diagnostics, sources)
    assert len(rendered) == 3 and all(
        '"**************"' in text and '"http://a/v1", "************************"' in text for text in rendered)
    assert not any("sk-live" in text or "hunter22" in text or "bob" in text for text in rendered)


# ---- polish (issue 24.4): the order, one message per typo, expected and found

TYPO = '''model Q { question: str }
model A { answer: str }
lm small = "local/smollm2-135m"
lm unused = "local/smollm2-135m"
program p {
    input q: Q
    answer = generate A from q using smal
    output answer
}
data d = jsonl("d.jsonl", split: "75%")
'''


def test_errors_come_before_warnings_each_in_file_order() -> None:
    diagnostics, _ = diagnose(Source("typo.icl", TYPO))
    assert [(d.severity, d.span.line) for d in diagnostics] == [("error", 7), ("error", 10), ("warning", 4)]


def test_a_typo_does_not_also_make_the_name_it_meant_unused() -> None:
    diagnostics, _ = diagnose(Source("typo.icl", TYPO))
    typo = next(d for d in diagnostics if d.code == "undefined-name")
    assert typo.help == "did you mean `small`?"
    assert [d.message for d in diagnostics if d.code == "unused-name"] == ["lm `unused` is never used"]


def test_a_wrong_type_says_what_was_expected_and_what_was_found() -> None:
    diagnostics, _ = diagnose(Source("typo.icl", TYPO))
    wrong = next(d for d in diagnostics if d.code == "wrong-type")
    assert wrong.help == ('expected a number, found the string "75%"; write a percentage as a fraction, '
                          "without quotes: 0.75")
