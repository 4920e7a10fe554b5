"""Building blocks for optimizer tests: a context without a trainer around it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from icldsl.language.compiler import compile_source
from icldsl.language.diagnostics import CheckError
from icldsl.language.source import Source
from icldsl.training.context import Context
from icldsl.training.resources import Resources
from tests.scripted import last_input


async def _no_evaluation(states, examples, label):
    raise AssertionError("this optimizer was not expected to evaluate candidates")


def context(rng: np.random.Generator, **fields: Any) -> Context:
    """A Context for calling `propose` directly; pass `program`, `evaluate`, ... as a test needs."""
    defaults = {"program": None, "reward": None, "train": (), "validation": (), "resources": Resources(),
                "evaluate": _no_evaluation}
    return Context(rng=rng, **{**defaults, **fields})

# A program whose step `p/a` an instruction optimizer can improve, and one with a frozen step before it.
INSTRUCTION_SOURCE = """
model Q { question: str "A question" }
model H { hint: str "A hint" }
model A { answer: float "The number" }
lm solver = "local/smollm2-135m"
program p "Answer questions" { input q: Q  a = generate A from q instructions "Answer."  output a }
program two { input q: Q  h = frozen generate H from q instructions "Hint."  a = generate A from q + h  output a }
"""


def question_number(request) -> int:
    """The number in the question `q<N>` a request asks."""
    return int(last_input(request)["question"][1:])


def with_data(tmp_path: Path, text: str) -> Source:
    """`text` as `p.icl` in `tmp_path`, beside a `d.jsonl` of 20 rows `{"question": "q<i>", "answer": i}`."""
    rows = [{"question": f"q{i}", "answer": i} for i in range(20)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return Source(str(tmp_path / "p.icl"), text)


def assert_refused(tmp_path: Path, text: str, edits: list[tuple[str, str, str]]) -> None:
    """Each (before, after, code): `text` with `before` replaced by `after` fails the checker with `code`."""
    for before, after, code in edits:
        with pytest.raises(CheckError) as info:
            compile_source(with_data(tmp_path, text.replace(before, after)))
        assert code in {d.code for d in info.value.diagnostics}, after
