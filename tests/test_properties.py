"""Property-based tests: whatever a file holds, icldsl loads it or refuses it with its own
error (an `icldsl.Error`), nothing else. Artifacts of random JSON (and real artifacts with
a random part replaced, their hash renewed so the content is what gets judged), data
files of random rows for each loader, random bytes through `check`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import icldsl
from icldsl import artifact, jsontext
from icldsl.language import parser
from icldsl.cli import main
from icldsl.language.compiler import compile_file, compile_source
from icldsl.datasets import load_dataset
from icldsl.language.diagnostics import CheckError
from icldsl.lm.repair import RepairError, read_object
from icldsl.lsp.completion import _in_comment
from icldsl.lsp.incremental import IncrementalParser, item_starts
from icldsl.runtime.program import Program
from icldsl.runtime.state import Demo, spec_and_states
from icldsl.language.source import Source
from tests.schema_faker import fake
from tests.scripted import ScriptedLM

ROOT = Path(__file__).resolve().parents[1]
QUICK = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                           max_leaves=20)
# Text that is JSON to Python's parser but not to icldsl: NaN, Infinity, overlarge numbers, deep nesting.
hostile_json = st.one_of(
    st.sampled_from(["NaN", "[Infinity]", '{"a": -Infinity}', "1e999", "9" * 5000]),
    st.integers(50, 5000).map(lambda n: "[" * n + "]" * n),
    st.integers(50, 5000).map(lambda n: '{"a": ' * n + "1" + "}" * n),
)


def run_or_refuse(action) -> Any:
    """The action's result, or None when it raised icldsl's own error."""
    try:
        return action()
    except icldsl.Error:
        return None


# ---- artifacts --------------------------------------------------------------------------------


def trained_doc(path: Path) -> dict:
    """The artifact of a program from programs/, every step taught one example of its own answer."""
    compiled = compile_file(path)
    spec, states = spec_and_states(compiled, next(iter(compiled.programs)))
    program = Program(spec, states, {lm.name: ScriptedLM(lambda r: fake(r.schema)) for lm in spec.lms})
    x = fake(program.input_model.model_json_schema())
    trace = asyncio.run(program.run(x))
    taught = {p: s.with_examples((Demo(r.inputs, r.output, 1.0, "made:1"),)) if r.output else s
              for p, s, r in ((p, s, trace.steps.get(p)) for p, s in states.items()) if r is not None}
    return artifact.freeze(program.with_states({**states, **taught}), source_file="x.icl", source_sha256="0" * 64,
                           training={})


DOCS = {name: trained_doc(ROOT / "programs" / f"{name}.icl") for name in ("support", "gsm8k_agent", "outline")}


def replace_at(doc: Any, steps: list[int], value: Any) -> Any:
    """`doc` with the part reached by `steps` (each picks a key or an item) replaced by `value`,
    or removed when `value` is the `...` marker and the part is an object's key."""
    if not steps or not isinstance(doc, (dict, list)) or not doc:
        return value
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[steps[0] % len(keys)]
    if isinstance(doc, dict):
        inner = replace_at(doc[key], steps[1:], value)
        return {k: v for k, v in doc.items() if k != key} if inner is ... else {**doc, key: inner}
    inner = replace_at(doc[key], steps[1:], value)
    return [v for i, v in enumerate(doc) if i != key] if inner is ... else [*doc[:key], inner, *doc[key + 1:]]


def load_and_call(path: Path) -> None:
    """Load the artifact at `path`; when it loads, run it once on a valid input against a
    scripted LM: the run may fail (a trace with an error) or raise icldsl's error, nothing else."""
    program = run_or_refuse(lambda: icldsl.load(path))
    event("refused" if program is None else "loaded")  # shown by --hypothesis-show-statistics
    if program is None:
        return
    lm = ScriptedLM(lambda r: fake(r.schema))
    program = icldsl.load(path, clients={spec.name: lm for spec in program.spec.lms})
    x = fake(program.input_model.model_json_schema())
    trace = run_or_refuse(lambda: asyncio.run(program.run(x)))
    event("refused the input" if trace is None else "ran" if trace.output is not None else "ran, prediction failed")


@settings(QUICK, max_examples=300)
@given(content=st.one_of(json_values.map(json.dumps), hostile_json, st.binary(max_size=300).map(
    lambda b: b.decode("latin-1"))))
def test_any_file_loads_as_an_artifact_or_is_refused(tmp_path_factory, content: str) -> None:
    path = tmp_path_factory.mktemp("any") / "a.artifact.json"
    path.write_text(content, encoding="utf-8")
    load_and_call(path)


@settings(QUICK, max_examples=400)
@given(name=st.sampled_from(sorted(DOCS)), steps=st.lists(st.integers(0, 50), min_size=1, max_size=8),
       value=json_values | st.just(...))
def test_an_artifact_with_any_part_replaced_and_rehashed_loads_or_is_refused(tmp_path_factory, name: str,
                                                                              steps: list[int], value: Any) -> None:
    doc = replace_at(DOCS[name], steps, value)
    if isinstance(doc, dict):
        doc[artifact.HASH_KEY] = artifact.content_hash(doc)
    path = tmp_path_factory.mktemp("part") / "a.artifact.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    load_and_call(path)


def test_the_unchanged_artifacts_load_and_run(tmp_path: Path) -> None:
    """The property tests' starting points are valid, so what they refuse is what they changed."""
    for name, doc in DOCS.items():
        path = artifact.write(tmp_path / f"{name}.json", doc)
        lm = ScriptedLM(lambda r: fake(r.schema))
        program = icldsl.load(path, clients={spec.name: lm for spec in icldsl.load(path).spec.lms})
        assert any(state.examples for state in program.states.values())
        trace = asyncio.run(program.run(fake(program.input_model.model_json_schema())))
        assert trace.output is not None, trace.error


# ---- data loaders -----------------------------------------------------------------------------

MODELS = """
model In {{ text: str  count: int?  tags: list[str]? }}
model Inner {{ value: float }}
model Out {{ label: enum("a", "b")  score: float  ok: bool?  inner: Inner? }}
lm m = "openai/x"
program p {{ input x: In  y = generate Out from x  output y }}
data d = {loader}
"""
FIELDS = ["text", "count", "tags", "label", "score", "ok", "inner", "value"]
numbers = st.floats(allow_nan=False, allow_infinity=False) | st.integers(-10**6, 10**6)
valid_rows = st.fixed_dictionaries(
    {"text": st.text(), "label": st.sampled_from(["a", "b"]), "score": numbers},
    optional={"count": st.integers(-5, 5) | st.none(), "tags": st.lists(st.text(max_size=5), max_size=3),
              "ok": st.booleans(), "inner": st.fixed_dictionaries({"value": numbers})})
row_values = st.one_of(scalars, st.lists(st.text(max_size=5), max_size=3), st.fixed_dictionaries({"value": scalars}),
                       json_values)


@st.composite
def rows(draw) -> list[dict]:
    """Rows the models accept, and sometimes one of them changed: a field given any value,
    a field removed, or a column the models do not have added."""
    table = draw(st.lists(valid_rows, min_size=1, max_size=6))
    if draw(st.booleans()):
        row = dict(table[draw(st.integers(0, len(table) - 1))])
        key = draw(st.sampled_from(FIELDS) | st.text(max_size=4))
        if draw(st.booleans()):
            row[key] = draw(row_values)
        else:
            row.pop(key, None)
        table.append(row)
    return table


def load(folder: Path, loader: str):
    compiled = compile_source(Source(str(folder / "p.icl"), MODELS.format(loader=loader)))
    spec, states = spec_and_states(compiled, "p")
    program = Program(spec, states)
    data = compiled.data["d"]
    return run_or_refuse(lambda: load_dataset("d", data.loader, data.args, base_dir=folder,
                                              x_model=program.input_model, y_model=program.output_model))


def csv_text(table: list[dict]) -> str:
    columns = list(dict.fromkeys(k for row in table for k in row)) or ["text"]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in table:
        writer.writerow([json.dumps(row[c]) if isinstance(row.get(c), (list, dict)) else row.get(c, "")
                         for c in columns])
    return out.getvalue()


FORMATS = {
    "jsonl": lambda table: "".join(json.dumps(r) + "\n" for r in table),
    "json": lambda table: json.dumps(table),
    "csv": csv_text,
}


@settings(QUICK, max_examples=200)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
@given(table=rows(), extra=st.one_of(st.just(""), hostile_json, st.binary(max_size=40).map(
    lambda b: b.decode("latin-1")), st.sampled_from(["\ufeff", "\n\n", "nan", "inf"])))
def test_each_loader_loads_random_rows_or_refuses_them(tmp_path_factory, fmt: str, table: list[dict],
                                                       extra: str) -> None:
    folder = tmp_path_factory.mktemp(fmt)
    text = FORMATS[fmt](table)
    position = len(text) // 2 if extra not in ("\ufeff",) else 0
    (folder / f"rows.{fmt}").write_text(text[:position] + extra + text[position:], encoding="utf-8")
    dataset = load(folder, f'{fmt}("rows.{fmt}", split: 0.5)')
    event("refused" if dataset is None else "loaded")
    if dataset is not None:  # what loads is what the models accept, and JSON can hold it
        json.dumps([e.x for e in dataset.train + dataset.test] + [e.y for e in dataset.train + dataset.test],
                   allow_nan=False)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_a_well_formed_file_loads_with_or_without_a_byte_order_mark(tmp_path: Path, fmt: str) -> None:
    table = [{"text": f"t{i}", "label": "a", "score": 0.5, "inner": {"value": 1.0}} for i in range(4)]
    for bom in ("", "\ufeff"):
        (tmp_path / f"rows.{fmt}").write_text(bom + FORMATS[fmt](table), encoding="utf-8")
        dataset = load(tmp_path, f'{fmt}("rows.{fmt}", split: 0.5)')
        assert dataset is not None and len(dataset.train + dataset.test) == 4


# ---- check ------------------------------------------------------------------------------------

SEEDS = [p.read_bytes() for p in sorted((ROOT / "programs").glob("*.icl"))]


@settings(QUICK, max_examples=500)
@given(data=st.one_of(
    st.binary(max_size=400),
    st.tuples(st.sampled_from(SEEDS), st.integers(0, 10_000), st.binary(min_size=1, max_size=20)).map(
        lambda t: t[0][: t[1] % len(t[0])] + t[2] + t[0][t[1] % len(t[0]):]),
))
def test_any_bytes_through_check_give_diagnostics_or_a_compiled_file(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("check") / "x.icl"
    path.write_bytes(data)
    status = main(["check", "--format", "concise", str(path)])
    event(f"exit {status}")
    assert status in (0, 1)


# ---- scanners under adversarial text ------------------------------------------------------------

# Pieces that once made a scanner backtrack or rescan: quotes, escapes, brackets, comment marks.
_HOSTILE_PIECES = ['"', '\\"', "\\\\", "\\", "//", "/*", "*/", "[", "]", "{", "}", "(", ")", "\n", "\\u", "'",
                   "model ", "a", " ", ":", ",", "`", "```"]
hostile_text = st.lists(st.tuples(st.sampled_from(_HOSTILE_PIECES), st.integers(1, 20_000)), min_size=1,
                        max_size=6).map(lambda runs: "".join(piece * n for piece, n in runs))
SCAN_CPU_BOUND = 2.0  # CPU seconds for at most ~500 KB; each example takes milliseconds


def _scans(text: str) -> list[tuple[str, Any]]:
    source = Source("hostile.icl", text)
    return [
        ("parse", (lambda: parser.parse(source, keep_comments=True), CheckError)),
        ("tokens", (lambda: parser.tokens(source), CheckError)),
        ("read_prefix", (lambda: parser.read_prefix(text), ())),
        ("item_starts", (lambda: item_starts(text), ())),
        ("incremental", (lambda: IncrementalParser().parse(source), ())),
        ("in_comment", (lambda: _in_comment(text), ())),
        ("jsontext", (lambda: jsontext.loads(text), jsontext.JSONTextError)),
        ("json in a string", (lambda: jsontext.loads('{"a": "' + text), jsontext.JSONTextError)),
        ("answer", (lambda: read_object(text), RepairError)),
        ("answer in an object", (lambda: read_object('{"a": "' + text), RepairError)),
    ]


@settings(QUICK, max_examples=60)
@given(text=hostile_text)
def test_every_scanner_reads_adversarial_text_in_bounded_time(text: str) -> None:
    for name, (action, refusal) in _scans(text):
        start = time.process_time()
        try:
            action()
        except refusal:
            pass
        took = time.process_time() - start
        assert took < SCAN_CPU_BOUND, f"{name} took {took:.2f} s on {len(text)} characters"
