"""Pydantic models from specs, the rendered prompt, and calling a program."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from icldsl.language.compiler import compile_source
from icldsl.language.diagnostics import CheckError
from icldsl.runtime.models import build_models, dump
from icldsl.runtime.program import InvalidInput, PredictionError, Program
from icldsl.runtime.prompt import render
from icldsl.runtime.state import Demo, StepState, spec_and_states
from icldsl.language.source import Source
from tests.scripted import ScriptedLM, last_input

TYPES = """
model Address { city: str "City"  zip: str? }
model Person {
    name: str "Full name"
    tags: list[str]
    role: enum("admin", "user") "Access level"
    home: Address "Where they live"
    past: list[Address]?
    json: int "a name pydantic itself uses"
    model_kind: str
}
lm m = "local/smollm2-135m"
program p { input x: Person  y = generate Person from x  output y }
"""


def person_model():
    spec, _ = spec_and_states(compile_source(Source("t.icl", TYPES)), "p")
    return build_models(spec.models)["Person"]


def test_models_validate_every_type_form() -> None:
    Person = person_model()
    value = {"name": "Ada", "tags": ["a"], "role": "admin", "home": {"city": "Paris"}, "json": 3, "model_kind": "k"}
    person = Person.model_validate(value)
    assert dump(person) == {**value, "home": {"city": "Paris", "zip": None}, "past": None}
    with pytest.raises(ValidationError):
        Person.model_validate({**value, "role": "root"})
    with pytest.raises(ValidationError):
        Person.model_validate({**value, "tags": "a"})
    with pytest.raises(ValidationError):
        Person.model_validate({k: v for k, v in value.items() if k != "home"})


def test_schema_carries_descriptions_and_declared_names() -> None:
    schema = person_model().model_json_schema(by_alias=True)
    assert schema["properties"]["name"]["description"] == "Full name"
    assert schema["properties"]["role"]["enum"] == ["admin", "user"]
    assert {"json", "model_kind"} <= set(schema["properties"])
    assert set(schema["required"]) == {"name", "tags", "role", "home", "json", "model_kind"}


def test_prompt_has_instructions_schema_examples_and_input_json() -> None:
    Person = person_model()
    schema = Person.model_json_schema(by_alias=True)
    demo = Demo({"q": "one"}, {"a": 1}, 1.0, "f:1")
    messages = render(StepState("Be precise.", (demo,)), schema, {"q": "two", "n": [1, 2]})
    roles = [m.role for m in messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert messages[0].content.startswith("Be precise.")
    assert "Full name" in messages[0].content and "Access level" in messages[0].content
    assert '"title"' not in messages[0].content
    assert json.loads(messages[1].content) == {"q": "one"}
    assert json.loads(messages[2].content) == {"a": 1}
    assert json.loads(messages[3].content) == {"q": "two", "n": [1, 2]}


GSM = """
model Q { question: str }
model A { answer: float }
lm solver = "openai/x" { temperature: 0.5, max_tokens: 20, base_url: "http://127.0.0.1:9" }
program p { input q: Q  a = generate A from q instructions "Add."  output a }
"""


def gsm_program(lm: ScriptedLM) -> Program:
    spec, states = spec_and_states(compile_source(Source("t.icl", GSM)), "p")
    return Program(spec, states, {"solver": lm})


def test_a_program_is_called_like_a_function_repeatedly() -> None:
    lm = ScriptedLM(lambda r: {"answer": len(last_input(r)["question"])})
    program = gsm_program(lm)
    try:
        assert program(question="abc").answer == 3.0
        assert program(question="abcde").answer == 5.0
    finally:
        program.close()
    request = lm.requests[0]
    assert (request.temperature, request.max_tokens) == (0.5, 20)
    assert request.schema["properties"]["answer"]["type"] == "number"
    assert request.messages[0].content.startswith("Add.")


def test_invalid_output_raises_prediction_error_and_bad_input_invalid_input() -> None:
    program = gsm_program(ScriptedLM(lambda r: {"answer": "lots"}))
    try:
        with pytest.raises(PredictionError, match="does not match `A`"):
            program(question="x")
        with pytest.raises(InvalidInput, match="input does not match `Q`"):
            program(text="x")
    finally:
        program.close()


def test_lm_settings_never_hold_a_key() -> None:
    literal = GSM.replace('base_url: "http://127.0.0.1:9"', 'api_key: "sk-secret"')
    with pytest.raises(CheckError) as info:
        compile_source(Source("t.icl", literal))
    assert [d.code for d in info.value.diagnostics] == ["secret-in-source"]
    text = GSM.replace('base_url: "http://127.0.0.1:9"', 'api_key: env("MY_KEY"), base_url: env("MY_URL")')
    spec, _ = spec_and_states(compile_source(Source("t.icl", text)), "p")
    assert spec.lms[0].options["api_key"] == {"env": "MY_KEY"}
    assert spec.lms[0].options["base_url"] == {"env": "MY_URL"}


def test_an_invalid_input_names_the_field_in_icldsls_words() -> None:
    program = gsm_program(ScriptedLM(lambda r: {"answer": "lots"}))
    try:
        with pytest.raises(InvalidInput) as missing:
            program(text="x")
        with pytest.raises(InvalidInput) as wrong:
            program(question=["a", 5])
    finally:
        program.close()
    assert str(missing.value) == "input does not match `Q`: field 'question': Field required"
    assert str(wrong.value) == "input does not match `Q`: field 'question': Input should be a valid string (got ['a', 5])"
    assert "pydantic" not in str(wrong.value) and "\n" not in str(wrong.value)
