"""Golden parse tests: every tests/golden/parse/*.icl has its IR dump beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from icldsl.language import ir
from icldsl.language.diagnostics import CheckError
from icldsl.language.parser import parse
from icldsl.language.source import Source

from tests.golden import assert_golden

CASES = sorted((Path(__file__).resolve().parents[1] / "golden" / "parse").glob("*.icl"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_parse_golden(case: Path, update_golden: bool) -> None:
    source = Source(case.name, case.read_text(encoding="utf-8"))
    assert_golden(ir.dump(parse(source)) + "\n", case.with_suffix(".ir"), update_golden)


def test_there_are_parse_cases() -> None:
    assert len(CASES) >= 4


def test_programs_parse() -> None:
    for path in (Path(__file__).resolve().parents[2] / "programs").glob("*.icl"):
        module = parse(Source.from_path(path))
        assert module.of(ir.Program), path


def test_numbers_keep_int_and_float_apart() -> None:
    module = parse(Source("t.icl", 'lm a = "local/x" { max_tokens: 5, temperature: 0.0, seed: -1 }'))
    (lm,) = module.of(ir.LM)
    values = {a.name: a.value.value for a in lm.options}
    assert values == {"max_tokens": 5, "temperature": 0.0, "seed": -1}
    assert isinstance(values["max_tokens"], int) and isinstance(values["temperature"], float)


def test_string_escapes() -> None:
    module = parse(Source("t.icl", r'model A { x: str "say \"hi\"\nthen \u00e9" }'))
    (model,) = module.of(ir.Model)
    assert model.fields[0].description == 'say "hi"\nthen é'


def test_keywords_are_reserved_only_where_expected() -> None:
    # `model`, `input`, `epochs` are keywords, yet fine as field names.
    module = parse(Source("t.icl", "model M { model: str input: int epochs: float list_of: bool }"))
    (model,) = module.of(ir.Model)
    assert [f.name for f in model.fields] == ["model", "input", "epochs", "list_of"]


@pytest.mark.parametrize(
    "text, line, col",
    [
        ("model A {\n  x: str\n", 3, 1),  # unclosed brace: end of file
        ("model A { x: }", 1, 14),
        ('model A { x: str "unterminated }', 1, 18),
        ("lm = 3", 1, 4),
        ("\x00\x01", 1, 1),
    ],
)
def test_syntax_errors_are_diagnostics(text: str, line: int, col: int) -> None:
    with pytest.raises(CheckError) as info:
        parse(Source("t.icl", text))
    (d,) = info.value.diagnostics
    assert d.code == "syntax-error"
    assert (d.span.line, d.span.column) == (line, col)


@pytest.mark.parametrize("definition", ['import "x.icl"', 'embedding e = "openai/x"', 'tool t = python("m:f")',
                                        'lm m = "openai/x"', "train p on d { epochs 1 }"])
def test_a_missing_brace_before_any_top_level_definition_is_pointed_at(definition: str) -> None:
    with pytest.raises(CheckError) as info:
        parse(Source("t.icl", "model A {\n  x: str\n" + definition + "\n"))
    keyword = definition.split()[0]
    assert [d.help for d in info.value.diagnostics] == [
        f"is a `}}` missing before line 3? `{keyword}` starts a new definition there"]
