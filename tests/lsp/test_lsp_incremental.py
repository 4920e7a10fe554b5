"""The language server's incremental parse gives exactly what parsing the whole file gives
(items, or the same syntax error), over random edits and the robustness test's mutations,
and reads again only the piece that changed."""

from __future__ import annotations

import random

import pytest

from icldsl.language.diagnostics import CheckError
from icldsl.lsp import incremental
from icldsl.lsp.incremental import IncrementalParser, item_starts
from icldsl.language.parser import parse
from icldsl.language.source import Source
from tests.program_generator import generate_program
from tests.test_robustness import SEEDS, mutate

SNIPPETS = ["}", "{", '"', "\n", "model X {", "lm", "\ntrain ", "(", ")", "// {", '"{"', "x: int", "=", " ", "[["]


def whole(source: Source) -> tuple:
    try:
        return "items", parse(source).items
    except CheckError as exc:
        return "error", exc.diagnostics


def incremental_result(parser: IncrementalParser, source: Source) -> tuple:
    parsed = parser.parse(source)
    return ("items", parsed.items) if parsed.error is None else ("error", parsed.error.diagnostics)


def edit(text: str, rng: random.Random) -> str:
    at = rng.randrange(len(text) + 1)
    kind = rng.randrange(4)
    if kind == 0:  # delete a stretch
        return text[:at] + text[at + rng.randint(1, 30):]
    if kind == 1:  # type something
        return text[:at] + rng.choice(SNIPPETS) + text[at:]
    if kind == 2 and text:  # duplicate a line
        lines = text.splitlines(keepends=True)
        i = rng.randrange(len(lines))
        return "".join(lines[:i] + [lines[i]] + lines[i:])
    return text[:at] + rng.choice(text.split() or ["x"]) + text[at:]  # paste a word


@pytest.mark.parametrize("seed", range(4))
def test_random_edits_parse_as_the_whole_file(seed: int) -> None:
    rng = random.Random(seed)
    texts = [p.read_text(encoding="utf-8") for p in SEEDS]
    outcomes = set()
    for _ in range(40):
        text = rng.choice(texts)
        parser = IncrementalParser()
        for _ in range(8):  # a session of edits, each reusing the pieces of the last version
            source = Source("edited.icl", text)
            expected = whole(source)
            assert incremental_result(parser, source) == expected
            outcomes.add(expected[0])
            text = edit(text, rng)
    assert outcomes == {"items", "error"}


def test_mutated_programs_parse_as_the_whole_file() -> None:
    rng = random.Random(7)
    texts = [p.read_text(encoding="utf-8") for p in SEEDS]
    parser = IncrementalParser()
    for _ in range(300):
        original = rng.choice(texts)
        parser.parse(Source("fuzz.icl", original))
        source = Source("fuzz.icl", mutate(original, rng))
        assert incremental_result(parser, source) == whole(source)


def test_an_edit_reads_only_the_piece_that_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    text = generate_program(2000)
    parser = IncrementalParser()
    parser.parse(Source("big.icl", text))
    calls = []
    monkeypatch.setattr(incremental, "parse", lambda source: calls.append(source) or parse(source))
    at = text.index('"The input text 5"')
    edited = text[:at] + '"The input text 5, longer"' + text[at + len('"The input text 5"'):]
    parsed = parser.parse(Source("big.icl", edited))
    assert len(calls) == 1 and calls[0].text.startswith("model In5 {")
    assert parsed.error is None and parsed.items == parse(Source("big.icl", edited)).items


def test_pieces_start_at_item_keywords_outside_brackets() -> None:
    text = 'model A {\n    model: str\n}\n  lm x = "local/smollm2-135m"\n// model\ntrain p on d { }\n'
    assert [text[s:].split(None, 1)[0] for s in item_starts(text)] == ["model", "lm", "train"]
