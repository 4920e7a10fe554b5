"""Every example program checks, is formatted, compiles, and runs on a few of its
own examples against a scripted LM that answers any schema validly."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from icldsl.language.compiler import compile_file
from icldsl.language.formatter import format_source
from icldsl.lm.base import LMRequest
from icldsl.language.source import Source
from icldsl.training.session import load_data, program_of
from tests.schema_faker import fake
from tests.scripted import ScriptedLM

PROGRAMS = sorted((Path(__file__).resolve().parents[1] / "programs").glob("*.icl"))
STEP_KINDS = {"generate", "chain_of_thought", "decide", "agent", "branch"}


def answer(request: LMRequest) -> dict:
    return fake(request.schema)


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_program_checks_without_warnings_and_is_formatted(path: Path) -> None:
    compiled = compile_file(path)
    assert compiled.warnings == ()
    text = path.read_text(encoding="utf-8")
    assert format_source(Source(str(path), text)) == text, "run `icldsl fmt` on it"


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.stem for p in PROGRAMS])
def test_program_runs_on_its_examples_with_a_scripted_lm(path: Path, shared_datasets: None) -> None:
    compiled = compile_file(path)
    for name, (spec, _) in compiled.programs.items():
        lm = ScriptedLM(answer)
        program = program_of(compiled, name, {l.name: lm for l in spec.lms})
        trains = [t for t in compiled.trains if t.program == name]
        if trains:
            inputs = [e.x for e in load_data(compiled, trains[0], program).test[:3]]
        else:
            inputs = [fake(program.input_model.model_json_schema())]
        async def run_all() -> list:
            return await asyncio.gather(*(program.run(x) for x in inputs))

        traces = asyncio.run(run_all())
        for trace in traces:
            assert trace.error is None, trace.error
            program.output_model.model_validate(trace.output)
        assert lm.requests


def test_the_examples_use_every_step_kind_and_type() -> None:
    kinds, types = set(), set()
    for path in PROGRAMS:
        for spec, _ in compile_file(path).programs.values():
            kinds |= {step.kind for step in spec.steps} | {s.kind for s in spec.lm_steps()}
            text = json.dumps([m.fields for m in spec.models], default=lambda f: [f.name, f.type])
            types |= {t for t in ("str", "int", "float", "bool", "list", "optional", "enum", "model",
                                  "constrained") if f'"{t}"' in text}
    assert kinds == STEP_KINDS
    assert types == {"str", "int", "float", "bool", "list", "optional", "enum", "model", "constrained"}
