"""Golden diagnostic tests: every tests/golden/errors/*.icl has its rendered
diagnostics beside it, and every registered code has at least one case."""

from __future__ import annotations

from pathlib import Path

import pytest

from icldsl.checker import check
from icldsl.diagnostics import CODES, CheckError, Diagnostic, render, render_concise, sort_key
from icldsl.parser import parse
from icldsl.source import Source
from tests.golden import assert_golden

CASES = sorted((Path(__file__).parent / "golden" / "errors").glob("*.icl"))


def diagnose(source: Source) -> list[Diagnostic]:
    try:
        return sorted(check(parse(source)), key=sort_key)
    except CheckError as exc:
        return sorted(exc.diagnostics, key=sort_key)


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_error_golden(case: Path, update_golden: bool) -> None:
    source = Source(f"{case.parent.name}/{case.name}", case.read_text(encoding="utf-8"))
    diagnostics = diagnose(source)
    assert diagnostics, "a golden error case must produce diagnostics"
    # A case is named after the code it shows, optionally `--variant`.
    assert case.stem.split("--")[0] in {d.code for d in diagnostics}
    text = "\n\n".join(render(d, {source.name: source}) for d in diagnostics) + "\n"
    assert_golden(text, case.with_suffix(".txt"), update_golden)


def test_every_code_has_a_case() -> None:
    covered = set()
    for case in CASES:
        covered |= {d.code for d in diagnose(Source(case.name, case.read_text(encoding="utf-8")))}
    assert covered == set(CODES)


def test_concise_format_is_one_line_each() -> None:
    case = next(c for c in CASES if c.stem == "unknown-field")
    source = Source("unknown-field.icl", case.read_text(encoding="utf-8"))
    lines = [render_concise(d) for d in diagnose(source)]
    assert lines == [
        "unknown-field.icl:14:38: error[unknown-field]: model `NumericalAnswerWithThinking` has no field "
        "`anwser` (did you mean `answer`?)"
    ]


def test_all_errors_are_gathered_at_once() -> None:
    case = next(c for c in CASES if c.stem == "undefined-name")
    diagnostics = diagnose(Source(case.name, case.read_text(encoding="utf-8")))
    assert sum(d.code == "undefined-name" for d in diagnostics) >= 6
