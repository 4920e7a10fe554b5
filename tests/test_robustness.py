"""Mutated programs end in diagnostics or success, never in a Python traceback."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from icldsl.language.compiler import compile_source
from icldsl.language.diagnostics import CheckError
from icldsl.language.source import Source
from tests.program_generator import generate_program, write_data

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted([*ROOT.glob("programs/*.icl"), *ROOT.glob("tests/golden/parse/*.icl")])
TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?|\S')


def mutate(text: str, rng: random.Random) -> str:
    tokens = TOKEN.findall(text)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(tokens))
        kind = rng.randrange(5)
        if kind == 0:
            del tokens[i]
        elif kind == 1:
            tokens.insert(i, tokens[i])
        elif kind == 2:
            j = rng.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        elif kind == 3:
            tokens[i] = rng.choice(tokens)
        else:
            tokens.insert(i, bytes(rng.randrange(256) for _ in range(3)).decode("latin-1"))
    return " ".join(tokens)


@pytest.mark.parametrize("seed", range(20))
def test_mutated_programs_never_raise_anything_but_diagnostics(seed: int) -> None:
    """20 x 500 = 10,000 mutated programs, each ending in diagnostics or success."""
    rng = random.Random(seed)
    texts = [p.read_text(encoding="utf-8") for p in SEEDS]
    outcomes = {"ok": 0, "diagnostics": 0}
    for _ in range(500):
        try:
            compile_source(Source("fuzz.icl", mutate(rng.choice(texts), rng)))
            outcomes["ok"] += 1
        except CheckError as exc:
            assert exc.diagnostics
            outcomes["diagnostics"] += 1
    assert outcomes["diagnostics"] > 0


def test_deep_nesting_is_a_diagnostic() -> None:
    text = "model A { x: " + "list[" * 5000 + "int" + "]" * 5000 + " }"
    with pytest.raises(CheckError) as info:
        compile_source(Source("deep.icl", text))
    assert info.value.diagnostics[0].code == "nesting-too-deep"


def test_random_bytes_are_diagnostics() -> None:
    rng = random.Random(0)
    for _ in range(300):
        data = bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        text = data.decode("utf-8", errors="replace")
        try:
            compile_source(Source("bytes.icl", text))
        except CheckError as exc:
            assert exc.diagnostics


def test_a_huge_valid_file_compiles(tmp_path: Path) -> None:
    text = generate_program(20_000)
    write_data(tmp_path)
    compiled = compile_source(Source(str(tmp_path / "huge.icl"), text))
    assert len(compiled.programs) > 500 and not compiled.warnings


@pytest.mark.parametrize("opener, closer", [("[", "]"), ("{ a: ", "}"), ("f(", ")")])
def test_deeply_nested_values_are_diagnostics(opener: str, closer: str) -> None:
    text = "data d = gsm8k(path: " + opener * 10_000 + "1" + closer * 10_000 + ")"
    with pytest.raises(CheckError) as info:
        compile_source(Source("deep.icl", text))
    assert info.value.diagnostics[0].code in ("nesting-too-deep", "syntax-error")
