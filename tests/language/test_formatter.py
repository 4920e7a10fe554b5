"""`icldsl fmt`: canonical, idempotent, keeps meaning and comments."""

from __future__ import annotations

import dataclasses
import random
import re
from pathlib import Path

import pytest

from icldsl.cli import main
from icldsl.language.formatter import format_source
from icldsl.language.parser import parse
from icldsl.language.source import Source
from tests.test_robustness import SEEDS

MESSY = """// header comment

model   Q{question:str "The question"   // the only field
  hint : str? }
lm m="local/smollm2-135m"{temperature:0.5}
lm n = "local/smollm2-135m"


program p "doc" {
input q : Q
    // the draft comes first
  draft=generate Q from q using m
 final = frozen chain_of_thought Q from q+draft using n instructions "Check the draft carefully, then write the final answer as the schema says."
output final
}
train p on d { reward exact_match() optimizer random_few_shot() epochs 2 }
// trailing comment at the end
"""

CANONICAL = """// header comment

model Q {
    question: str "The question"  // the only field
    hint:     str?
}

lm m = "local/smollm2-135m" { temperature: 0.5 }
lm n = "local/smollm2-135m"

program p "doc" {
    input  q: Q
    // the draft comes first
    draft  = generate Q from q using m
    final  = frozen chain_of_thought Q from q + draft using n
        instructions "Check the draft carefully, then write the final answer as the schema says."
    output final
}

train p on d {
    reward    exact_match()
    optimizer random_few_shot()
    epochs    2
}
// trailing comment at the end
"""


def fmt(text: str) -> str:
    return format_source(Source("t.icl", text))


def test_a_messy_file_gets_the_canonical_layout() -> None:
    assert fmt(MESSY) == CANONICAL
    assert fmt(CANONICAL) == CANONICAL


def strip_spans(node):
    """The IR without positions, to compare meaning."""
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        return (type(node).__name__,) + tuple(
            strip_spans(getattr(node, f.name)) for f in dataclasses.fields(node) if f.name not in ("span", "comments"))
    if isinstance(node, tuple):
        return tuple(strip_spans(n) for n in node)
    return node


def test_formatting_keeps_meaning_and_comments_on_every_seed() -> None:
    for path in SEEDS:
        text = path.read_text(encoding="utf-8")
        once = fmt(text)
        assert fmt(once) == once, path.name
        assert strip_spans(parse(Source("a", once))) == strip_spans(parse(Source("a", text))), path.name
        comments = [c.text.strip() for c in parse(Source("a", text), keep_comments=True).comments]
        assert [c.text.strip() for c in parse(Source("a", once), keep_comments=True).comments] == comments


LEXEME = re.compile(r'//[^\n]*|"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|=>|\S')


def reshape(text: str, rng: random.Random) -> str:
    """The same program with its whitespace scrambled and comments added between tokens."""
    out = []
    for lexeme in LEXEME.findall(text):
        out.append(lexeme)
        if lexeme.startswith("//"):
            out.append("\n" * rng.randint(1, 2))
        elif rng.random() < 0.03:
            out.append(f"  // note {rng.randint(0, 99)}\n")
        else:
            out.append(rng.choice([" ", "  ", "\n", "\n\n", "\t", " \n    "]))
    return "".join(out)


def test_scrambled_layouts_format_to_the_same_meaning_stably() -> None:
    rng = random.Random(7)
    for path in SEEDS:
        original = parse(Source("a", path.read_text(encoding="utf-8")))
        for _ in range(10):
            text = reshape(path.read_text(encoding="utf-8"), rng)
            once = fmt(text)
            assert fmt(once) == once, path.name
            assert strip_spans(parse(Source("a", once))) == strip_spans(original), path.name
            kept = [c.text.strip() for c in parse(Source("a", once), keep_comments=True).comments]
            assert kept == [c.text.strip() for c in parse(Source("a", text), keep_comments=True).comments]


def test_fmt_command_check_diff_and_rewrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "messy.icl"
    path.write_text(MESSY)
    assert main(["fmt", "--check", str(path)]) == 1
    assert path.read_text() == MESSY
    assert main(["fmt", "--diff", str(path)]) == 1
    assert "+    input  q: Q" in capsys.readouterr().out
    assert main(["fmt", str(path)]) == 0
    assert path.read_text() == CANONICAL
    assert main(["fmt", "--check", str(path)]) == 0


def test_fmt_reports_syntax_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "bad.icl"
    path.write_text("model {")
    assert main(["fmt", str(path)]) == 1
    assert "error[syntax-error]" in capsys.readouterr().err
