"""One vocabulary for specs, one spec_check: the checker (on a file) and the artifact loader
(on a spec read back) read the same tables and apply the same rules, so what one accepts
the other does."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from icldsl import artifact
from icldsl.language.compiler import compile_source
from icldsl.language.diagnostics import CheckError
from icldsl.language.options import URLS, Choice, Within, fits
from icldsl.language.source import Source
from icldsl.language.vocabulary import CONSTRAINTS, STEP_KINDS
from icldsl.runtime.models import PYDANTIC_CONSTRAINTS
from icldsl.runtime.program import Program
from icldsl.runtime.state import Demo, StepState, spec_and_states
from icldsl.user_code import UserCodeError, load_function

GRAMMAR = (Path(__file__).resolve().parents[2] / "grammar" / "icl.lark").read_text()

PROGRAM = """
model Q {{ question: str }}
model A {{ answer: {type} }}
lm m = "{target}" {{ {options} }}
program p {{ input q: Q  a = generate A from q  output a }}
"""


def source(type_: str = "str", target: str = "openai/gpt-x", options: str = "") -> Source:
    return Source("p.icl", PROGRAM.format(type=type_, target=target, options=options))


def frozen(src: Source) -> dict[str, Any]:
    """The artifact document of a file's program, untrained."""
    return artifact.freeze(Program(*spec_and_states(compile_source(src), "p")), source_file="p.icl", source_sha256="0" * 64, training={})


def test_the_grammar_spells_the_step_kinds_of_the_vocabulary() -> None:
    terminals = re.search(r"^lm_step: FROZEN\? \(([A-Z_ |]+)\)", GRAMMAR, re.M).group(1).split(" | ")
    assert tuple(re.search(rf'^{t}: "(\w+)"$', GRAMMAR, re.M).group(1) for t in terminals) == STEP_KINDS


def test_the_runtime_builds_every_constraint_of_the_vocabulary_and_no_other() -> None:
    assert set(PYDANTIC_CONSTRAINTS) == {name for names in CONSTRAINTS.values() for name in names}


@pytest.mark.parametrize("written, stored, message", [
    ("int(min: 5, max: 1)", {"constrained": "int", "min": 5, "max": 1}, "`min` is greater than `max`"),
    ("float(min: 0.5, max: 0.25)", {"constrained": "float", "min": 0.5, "max": 0.25}, "`min` is greater than `max`"),
    ("str(min_length: -1)", {"constrained": "str", "min_length": -1}, "`min_length` cannot be negative"),
    ("list[str](min_items: 3, max_items: 2)", {"constrained": {"list": "str"}, "min_items": 3, "max_items": 2},
     "`min_items` is greater than `max_items`"),
    ('str(pattern: "(a)\\\\1")', {"constrained": "str", "pattern": "(a)\\1"},
     "`pattern` cannot be used: backreferences are not supported (at character 4)"),
])
def test_the_checker_and_the_loader_refuse_the_same_constraints_in_the_same_words(
        written: str, stored: dict, message: str) -> None:
    with pytest.raises(CheckError) as refused:
        compile_source(source(written))
    assert message in [d.message for d in refused.value.diagnostics]
    doc = frozen(source())
    doc["program"]["models"][1]["fields"][0]["type"] = stored
    with pytest.raises(artifact.ArtifactError) as caught:
        artifact.program_from(doc)
    assert str(caught.value) == f"the artifact cannot run: model `A`, field `answer`: {message}"


@pytest.mark.parametrize("stored, message", [
    ({"model": [1]}, "no model [1]"), ({"list": {"model": {}}}, "no model {}"), ({"constrained": [1]}, "unknown type [1]"),
    ({"constrained": "str", "pattern": {"env": "X"}}, "constraint 'pattern' does not fit str"),
])
def test_a_type_of_any_json_is_refused_in_words(stored: Any, message: str) -> None:
    doc = frozen(source())
    doc["program"]["models"][1]["fields"][0]["type"] = stored
    with pytest.raises(artifact.ArtifactError, match=re.escape(f"field `answer`: {message}")):
        artifact.program_from(doc)


def test_constraints_the_checker_accepts_load() -> None:
    written = 'str(min_length: 0, max_length: 0, pattern: "^x*$")'
    assert artifact.program_from(frozen(source(written))).spec.name == "p"


@pytest.mark.parametrize("base_url", ['"ftp://h/v1"', '["http://h/v1", "http://h/v1/"]'])
def test_an_lm_option_the_checker_refuses_is_refused_by_the_loader(base_url: str) -> None:
    # The loader's own fit took any strings as URLs, where the checker takes http(s) URLs, each once.
    expected = "must be a URL or a non-empty list of them (http or https, each once)"
    with pytest.raises(CheckError) as refused:
        compile_source(source(options=f"base_url: {base_url}"))
    (diagnostic,) = refused.value.diagnostics
    assert diagnostic.message.startswith(f"option `base_url` of lm `m` (openai) {expected}")
    doc = frozen(source())
    doc["program"]["lms"][0]["options"] = {"base_url": json.loads(base_url)}
    with pytest.raises(artifact.ArtifactError, match=re.escape(f"lm `m`: option `base_url` {expected}")):
        artifact.program_from(doc)


def test_an_lm_option_the_checker_accepts_loads_whatever_its_type() -> None:
    # The loader had its own fit, which once refused a choice (`weights`) the checker accepts.
    doc = frozen(source(target="local/smollm2-135m", options='weights: "q4_0", n_ctx: 2048'))
    assert doc["program"]["lms"][0]["options"] == {"weights": "q4_0", "n_ctx": 2048}
    assert artifact.program_from(doc).spec.lms[0].options["weights"] == "q4_0"
    wrong = copy.deepcopy(doc)
    wrong["program"]["lms"][0]["options"]["weights"] = "q9"
    with pytest.raises(artifact.ArtifactError, match='option `weights` must be one of "file", "q4_0"'):
        artifact.program_from(wrong)


@pytest.mark.parametrize("fallback", [[1], {"a": 1}, "nowhere"])
def test_a_fallback_that_names_no_lm_is_refused_whatever_it_holds(fallback: Any) -> None:
    doc = frozen(source())
    doc["program"]["lms"][0]["options"] = {"fallback": fallback}
    with pytest.raises(artifact.ArtifactError, match=re.escape(f"lm `m`: falls back to `{fallback}`, which is not")):
        artifact.program_from(doc)


@pytest.mark.parametrize("value, t, stored", [
    (3, float, True), (3.5, int, False), (True, int, False), ("x", str, True), ({"env": "K"}, str, False),
    (8, Within(int, 1, 1024), True), (0, Within(int, 1, 1024), False), ("q4_0", Choice(("file", "q4_0")), True),
    (["http://a/v1", {"env": "B"}], URLS, False), ([], URLS, False), ({"calls": 5}, dict[str, int], True),
])
def test_a_stored_value_fits_its_type_as_the_same_value_written_in_a_file(value: Any, t: Any, stored: bool) -> None:
    assert fits(value, t) is stored
    env = value == {"env": "K"} or value == ["http://a/v1", {"env": "B"}]  # {"env": NAME} is env("NAME") in a spec
    assert fits(value, t, env=True) is (stored or env)


@pytest.mark.parametrize("ref", ["os.system", "a:b:c", ":f", "m:"])
def test_a_function_name_is_refused_in_the_same_words_by_the_checker_the_loader_and_the_importer(
        ref: str, tmp_path: Path) -> None:
    message = f"{ref!r} is not of the form \"module:function\""
    tool = f'model Q {{ question: str }}\nmodel A {{ answer: str }}\nlm m = "openai/x"\ntool t = python("{ref}")\n' \
           "program p { input q: Q  a = agent A from q tools [t]  output a }\n"
    with pytest.raises(CheckError) as refused:
        compile_source(Source("p.icl", tool))
    assert message in [d.message for d in refused.value.diagnostics]
    doc = frozen(Source("p.icl", tool.replace(ref, "icldsl.tools:calculator")))
    doc["program"]["tools"][0]["ref"] = ref
    with pytest.raises(artifact.ArtifactError, match=re.escape(f"tool `t`: {message}")):
        artifact.program_from(doc)
    with pytest.raises(UserCodeError, match=re.escape(message)):
        load_function(ref, (tmp_path,))


def test_a_step_state_reads_back_what_it_writes_and_refuses_another_form_by_part() -> None:
    state = StepState("Solve.", (Demo({"q": "1"}, {"a": 2}, 1.0, "rows.jsonl:1"),), bounds=(("a", 12),))
    assert StepState.from_json(state.to_json()) == state
    for part, value, where in (("frozen", [], ("frozen",)), ("bounds", {"a": 0}, ("bounds", "a")),
                               ("examples", [{"inputs": {}}], ("examples", 0, "output"))):
        with pytest.raises(ValidationError) as wrong:
            StepState.from_json({**state.to_json(), part: value})
        assert wrong.value.errors()[0]["loc"] == where
