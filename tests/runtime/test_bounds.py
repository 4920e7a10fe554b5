"""String bounds: taken by a fit from the training outputs, carried by the schema of every
request (the prompt's and the local grammar's), kept in the artifact, and stated by
`plan` and `render`, with a warning when max_tokens cannot hold them."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path

import pytest

import icldsl
from icldsl import artifact
from icldsl.cli import main
from icldsl.language.compiler import compile_file
from icldsl.lm.local import bound_strings
from icldsl.plan import format_plan, plan_compiled
from icldsl.runtime import bounds
from icldsl.runtime.state import StepState
from icldsl.lm.cache import LMCache
from icldsl.training.session import eval_compiled, program_of, with_data_bounds
from tests.scripted import ScriptedLM, last_input
from tests.fakes import Unreachable

FILE = """
model Query {{ text: str }}
model Slots {{
    city: str? "The city"
    time_range: str? "When"
    code: str(max_length: 5) "A short code"
    kind: enum("a", "b")
}}
lm small = "{target}" {{ temperature: 0.0, max_tokens: {max_tokens} }}
program slots {{ input q: Query  s = generate Slots from q  output s }}
data rows = jsonl("rows.jsonl", split: 0.8)
train slots on rows {{
    reward exact_match(per_field: "f1")
    optimizer labeled_few_shot(nb_min_examples: 1, nb_max_examples: 2, candidates: 1)
    validation_split 0.25
}}
"""

CITIES = ["Paris", "Oslo", "Rio de Janeiro", "Llanfairpwllgwyngyll-gogerychwyrndrobwll"]  # 4 to 41 characters


def project(tmp_path: Path, *, target: str = "local/smollm2-135m", max_tokens: int = 200) -> Path:
    rows = [{"text": f"weather in {CITIES[i % 3]} at {i}", "city": CITIES[i % 3],
             "time_range": f"at {i}" if i % 2 else None, "code": "x", "kind": "a"} for i in range(30)]
    rows.append({"text": "weather far away", "city": CITIES[3], "time_range": None, "code": "x", "kind": "b"})
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path = tmp_path / "slots.icl"
    path.write_text(FILE.format(target=target, max_tokens=max_tokens), encoding="utf-8")
    return path


def properties(schema: dict) -> dict:
    """Each field's strings' maxLength (None: none), enums left out."""
    return {name: [n.get("maxLength") for n in [prop, *prop.get("anyOf", ())]
                   if n.get("type") == "string" and "enum" not in n]
            for name, prop in schema["properties"].items()}


def test_a_bound_is_the_longest_training_value_and_half_again_at_least_16(tmp_path: Path) -> None:
    compiled = compile_file(project(tmp_path))
    program = program_of(compiled, "slots")
    model = program.models["Slots"]
    assert bounds.free_fields(model) == ["city", "time_range"]  # code has its max_length, kind is an enum
    outputs = [{"city": "Rio de Janeiro", "time_range": None}, {"city": "Oslo", "time_range": "at 5"}]
    assert bounds.from_data(model, outputs) == (("city", 21), ("time_range", 16))  # ceil(14 * 1.5); at least 16
    assert bounds.from_data(model, [{"time_range": None}]) == (("time_range", 16),)  # only null: the floor
    assert bounds.from_data(model, [{"other": "x"}]) == ()  # the data does not hold the fields

    schema = bounds.bounded_schema(model, (("city", 21),))
    assert properties(schema) == {"city": [21], "time_range": [None], "code": [5], "kind": []}
    assert bounds.bounded_schema(model, (("city", 21),)) is schema  # one object: its prompt text is made once
    assert properties(bounds.bounded_schema(model, ())) == {"city": [None], "time_range": [None], "code": [5],
                                                            "kind": []}


def test_every_request_of_a_fit_carries_the_data_bounds_and_the_artifact_keeps_them(tmp_path: Path) -> None:
    compiled = compile_file(project(tmp_path))
    lm = ScriptedLM(lambda r: {"city": last_input(r)["text"].split(" in ")[-1].split(" at ")[0],
                               "time_range": None, "code": "x", "kind": "a"})
    report = icldsl.fit(compiled, clients={"small": lm}, write=False, report=False).report
    # the longest city of the training split (Rio de Janeiro, 14, or the 41-character one if it was drawn)
    longest = max(len(e.y["city"]) for e in program_and_data(compiled)[1])
    city = max(16, -(-longest * 3 // 2))
    assert all(properties(r.schema)["city"] == [city] and properties(r.schema)["time_range"] == [16]
               for r in lm.requests)  # the untrained test evaluation included
    assert report.artifact["states"]["slots/s"]["bounds"] == {"city": city, "time_range": 16}
    loaded = icldsl.load(artifact.write(tmp_path / "slots.artifact.json", report.artifact))
    assert loaded.states["slots/s"].bounds == (("city", city), ("time_range", 16))
    assert StepState.from_json(loaded.states["slots/s"].to_json()) == loaded.states["slots/s"]
    assert "bounds" not in StepState("x").to_json()  # a state without bounds keeps its bytes


def program_and_data(compiled):
    from icldsl.training.session import load_data

    program = program_of(compiled, "slots")
    return program, load_data(compiled, compiled.train(), program).train


def test_describe_says_where_each_bound_comes_from(tmp_path: Path) -> None:
    compiled = compile_file(project(tmp_path, max_tokens=100))
    program = program_of(compiled, "slots")
    model, lm = program.models["Slots"], compiled.programs["slots"][0].lms[0]
    found = bounds.describe(model, (("city", 21),), lm)
    shared = bound_strings(bounds.bounded_schema(model, (("city", 21),)), 100)["properties"]["time_range"]
    assert [(b.field, b.limit, b.origin) for b in found] == [
        ("city", 21, "training data"), ("time_range", shared["anyOf"][0]["maxLength"], "a share of max_tokens 100"),
        ("code", 5, "max_length")]
    assert bounds.bounds_text(found) == (f"city ≤ 21 characters (training data); time_range ≤ "
                                         f"{shared['anyOf'][0]['maxLength']} characters (a share of max_tokens 100); "
                                         "code ≤ 5 characters (max_length)")
    remote = compile_file(project(tmp_path, target="openai/gpt-4.1-mini")).programs["slots"][0].lms[0]
    assert [(b.field, b.limit) for b in bounds.describe(model, (), remote)] == [
        ("city", None), ("time_range", None), ("code", 5)]  # only the local grammar shares max_tokens


def test_bounds_a_local_max_tokens_cannot_hold_are_cut_fairly_and_said_with_the_fix(tmp_path: Path) -> None:
    compiled = compile_file(project(tmp_path, max_tokens=60))
    model = program_of(compiled, "slots").models["Slots"]
    lm = compiled.programs["slots"][0].lms[0]
    wanted = (("city", 21), ("time_range", 16))
    # the rest of the answer: punctuation 16, two nulls 4 each, four quotes, code 5 + 2, the label "a" 3
    rest = bounds.tokens_needed(model, (("city", 0), ("time_range", 0)))
    assert rest == 16 + 2 * (4 + 2) + 7 + 3 == 38
    at = lambda max_tokens: dataclasses.replace(lm, options={**lm.options, "max_tokens": max_tokens})
    assert bounds.fitted(model, wanted, at(75)) == wanted  # 38 + 21 + 16 = 75: all of it fits
    assert bounds.fitted(model, wanted, at(70)) == (("city", 16), ("time_range", 16))  # 32 left: 16 each
    assert bounds.fitted(model, wanted, at(66)) == (("city", 14), ("time_range", 14))
    assert bounds.fitted(model, (("city", 10), ("time_range", 40)), at(66)) == (("city", 10), ("time_range", 18))
    # time_range, which the data does not hold, keeps a share
    assert bounds.fitted(model, (("city", 40),), at(70)) == (("city", 16),)
    assert bounds.fitted(model, wanted, at(40)) == (("city", 8), ("time_range", 8))  # never below 8
    remote = dataclasses.replace(lm, target="openai/gpt-4.1-mini")
    assert bounds.fitted(model, wanted, remote) == wanted  # only the local grammar is held to max_tokens
    # without data bounds, the local client's equal shares: at its floor, a warning
    assert bounds.starved("slots/s", bounds.describe(model, (), at(40))) == (
        "step slots/s: city, time_range get only 8 characters: max_tokens 40 leaves them nothing after the answer's "
        "other values; raise max_tokens, or give a `max_length` (or training data that holds the field)")
    assert bounds.starved("slots/s", bounds.describe(model, (("city", 10),), at(40))).startswith(
        "step slots/s: time_range gets only 8 characters")
    assert bounds.starved("slots/s", bounds.describe(model, (), at(200))) is None

    assert bounds.shortfall(model, wanted, wanted, at(75)) is None
    warning = bounds.shortfall(model, wanted, (("city", 16), ("time_range", 16)), at(70))
    assert warning == ("lm `small`'s max_tokens 70 cannot hold the string bounds the training data needs, so they "
                       "are cut (city 21 -> 16 characters) and answers as long as the data's cannot be given; raise "
                       "max_tokens to 75, or set a `max_length` on the fields")

    plan = plan_compiled(compiled, compiled.train())  # the data's bounds, cut to max_tokens 60
    (warning,) = plan.warnings
    assert warning.startswith("step slots/s: lm `small`'s max_tokens 60 cannot hold")
    assert "raise max_tokens to" in warning
    text = format_plan(plan)
    assert f"warning: {warning}" in text
    program, cut = with_data_bounds(program_of(compiled, "slots"), program_and_data(compiled)[1])
    assert cut == plan.warnings
    city, time_range = (dict(program.states["slots/s"].bounds)[f] for f in ("city", "time_range"))
    assert 38 + city + time_range <= 60
    assert f"string bounds: city ≤ {city}, time_range ≤ {time_range} characters (training data); code ≤ 5 " \
           "characters (max_length)" in text
    needed = int(warning.split("raise max_tokens to ")[1].split(",")[0])
    roomy = compile_file(project(tmp_path, max_tokens=needed))
    assert plan_compiled(roomy, roomy.train()).warnings == ()


def test_render_states_the_bounds_of_the_source_and_of_an_artifact(tmp_path: Path, capsys) -> None:
    path = project(tmp_path, max_tokens=200)
    assert main(["render", str(path)]) == 0
    out = capsys.readouterr().out
    assert "(string bounds: city ≤ " in out and "characters (a share of max_tokens 200)" in out
    assert '"maxLength": 5' in out  # the declared bound is in the schema the prompt shows

    compiled = compile_file(path)
    program, _ = with_data_bounds(program_of(compiled, "slots"), program_and_data(compiled)[1])
    doc = artifact.freeze(program, source_file=str(path), source_sha256=compiled.source.sha256, training={})
    artifact.write(tmp_path / "a.artifact.json", doc)
    assert main(["render", str(path), "--artifact", str(tmp_path / "a.artifact.json")]) == 0
    out = capsys.readouterr().out
    city = dict(program.states["slots/s"].bounds)["city"]
    assert f"(string bounds: city ≤ {city}, time_range ≤ 16 characters (training data)" in out
    assert f'"maxLength": {city}' in out  # the schema in the prompt carries the data bound


@pytest.mark.parametrize("bounds, message", [
    ({"city": 0}, "states.slots/s.bounds.city: Input should be greater than or equal to 1"),
    ({"town": 20}, "a string bound on `town`, which its answer (`Slots`) does not have"),
])
def test_an_artifact_with_a_bound_it_cannot_apply_is_refused(tmp_path: Path, bounds: dict, message: str) -> None:
    path = project(tmp_path)
    compiled = compile_file(path)
    doc = artifact.freeze(program_of(compiled, "slots"), source_file=str(path), source_sha256=compiled.source.sha256,
                          training={})
    doc["states"]["slots/s"]["bounds"] = bounds
    doc[artifact.HASH_KEY] = artifact.content_hash(doc)
    with pytest.raises(artifact.ArtifactError, match=re.escape(message)):
        artifact.program_from(doc)


def test_eval_of_the_source_scores_the_untrained_program_as_fit_did(tmp_path: Path) -> None:
    compiled = compile_file(project(tmp_path))
    train = compiled.train()
    lm = ScriptedLM(lambda r: {"city": "Paris", "time_range": None, "code": "x", "kind": "a"})
    with LMCache(tmp_path / "lm.sqlite3") as cache:
        report = icldsl.fit(compiled, clients={"small": lm}, cache=cache, write=False, report=False).report
    with LMCache(tmp_path / "lm.sqlite3") as cache:
        program = program_of(compiled, "slots", {"small": Unreachable()}, cache=cache, cache_mode="offline")
        scores = asyncio.run(eval_compiled(compiled, train, program, data_bounds=True))
    assert scores.usage_table.total.missing == 0  # every request is one the fit made: the same bounded schema
    assert scores.mean == report.untrained.mean
