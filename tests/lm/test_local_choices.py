"""Requests with choices on the real bundled model: the engine scores each text after the prompt."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest

from icldsl.lm.base import LMError, LMRequest, LMResponse, Message
from icldsl.lm.local import LocalClient
from icldsl.lm.local.engine import Engine
from icldsl.lm.local.machine import extra_buffer_types
from icldsl.lm.local.models import resolve_model

MODEL = "smollm2-135m"
MESSAGES = (Message("system", "Answer with the capital city, as JSON."), Message("user", "What is the capital of France?"))
CITIES = ("Paris", "London", "Berlin")


def choices(*priors: float) -> tuple[tuple[str, float], ...]:
    return tuple((json.dumps({"city": city}), prior) for city, prior in zip(CITIES, priors))


def scored(engine: Engine, request: LMRequest) -> tuple[str, list[float]]:
    """The engine's answer to `request` and the score of each choice, from the job itself."""
    done: list[LMResponse | LMError] = []
    job = engine.job(request, 0, done.append)
    engine.submit(job)
    with engine._cond:
        while engine._thread is not None:
            engine._cond.wait()
    (answer,) = done
    assert isinstance(answer, LMResponse), answer
    return answer.text, job.scores


@pytest.fixture(scope="module")
def engine() -> Any:
    pytest.importorskip("llama_cpp")
    made = Engine("local/" + MODEL, resolve_model(MODEL), n_ctx=512, n_threads=None, n_parallel=2)
    yield made
    made.close()


@pytest.mark.local_model
def test_choice_scores_are_the_log_probabilities_another_evaluation_gives(engine: Engine) -> None:
    if not extra_buffer_types():
        pytest.skip("the reference (llama-cpp-python's Llama) cannot turn off extra buffer types on this AMX CPU")
    import llama_cpp

    text, scores = scored(engine, LMRequest(MESSAGES, choices=choices(0, 0, 0)))
    prompt = engine.job(LMRequest(MESSAGES, choices=choices(0, 0, 0)), 0, lambda _: None).prompt
    reference = llama_cpp.Llama(str(resolve_model(MODEL)), n_ctx=512, logits_all=True, verbose=False)
    expected = []
    for city in CITIES:
        tokens = engine._tokenize(json.dumps({"city": city}).encode(), add_special=False)
        reference.reset()
        reference.eval(prompt + tokens)
        logits = np.asarray(reference.scores[len(prompt) - 1: len(prompt) - 1 + len(tokens)], dtype=np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        expected.append(float(log_probs[np.arange(len(tokens)), tokens].sum()))
    assert scores == pytest.approx(expected, abs=0.05)
    assert text == json.dumps({"city": CITIES[int(np.argmax(expected))]})


@pytest.mark.local_model
def test_priors_add_to_the_scores_and_can_turn_the_answer(engine: Engine) -> None:
    plain_text, plain = scored(engine, LMRequest(MESSAGES, choices=choices(0, 0, 0)))
    assert plain_text == json.dumps({"city": "Paris"})  # the model knows this one
    turned_text, turned = scored(engine, LMRequest(MESSAGES, choices=choices(-30, 0, -1)))
    assert turned == pytest.approx([plain[0] - 30, plain[1], plain[2] - 1], abs=1e-6)
    assert turned_text == json.dumps({"city": CITIES[int(np.argmax(turned))]}) != plain_text


@pytest.mark.local_model
def test_choices_answer_the_same_alone_and_beside_generated_answers() -> None:
    choosing = LMRequest(MESSAGES, choices=choices(0, -0.5, -0.2))
    generating = [LMRequest((Message("user", f"Count to {n}."),), temperature=0, max_tokens=12) for n in (3, 5, 7)]

    async def run(client: LocalClient, requests: list[LMRequest]) -> list[LMResponse]:
        try:
            return list(await asyncio.gather(*(client.complete(r) for r in requests)))
        finally:
            await client.aclose()

    alone = asyncio.run(run(LocalClient(MODEL, n_ctx=512, n_parallel=1), [choosing]))
    together = asyncio.run(run(LocalClient(MODEL, n_ctx=512, n_parallel=4), [*generating, choosing, choosing]))
    assert together[-1].text == together[-2].text == alone[0].text
    assert together[-1].usage == alone[0].usage
    assert all(r.usage.completion_tokens > 0 for r in together[:3])


@pytest.mark.local_model
def test_a_choice_that_cannot_fit_is_an_lm_error(engine: Engine) -> None:
    with pytest.raises(LMError, match="a choice must be from 1 to"):
        engine.job(LMRequest(MESSAGES, choices=(("", 0.0),)), 0, lambda _: None)
    with pytest.raises(LMError, match="do not fit the context window"):
        engine.job(LMRequest(MESSAGES, choices=(("word " * 490, 0.0),)), 0, lambda _: None)
