"""The session of a fit: one client per `lm` name, shared by the program, its reward and its
optimizers, so an lm's `rpm` and `max_concurrency` hold for all of them together and a local
model is built once."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import pytest

import icldsl.lm.local
from icldsl.language.compiler import compile_source
from icldsl.lm import http
from icldsl.lm.base import LMResponse, Usage
from icldsl.language.source import Source
from icldsl.training.session import eval_compiled, program_of
from tests.fakes import FakeClock
from tests.loopback import LoopbackServer

SHARED = """
model Q {{ question: str "Two numbers to add" }}
model A {{ answer: float "Their sum" }}
lm m = "{target}" {{ {options} }}
program adder {{ input q: Q  a = generate A from q using m  output a }}
data sums = jsonl("d.jsonl", split: 0.5)
train adder on sums {{
    reward lm_judge(lm: m, scale: 2)
    optimizer random_few_shot(nb_max_examples: 2)
    epochs 1
    batch_size 4
    concurrency 8
}}
"""


def compiled_in(folder: Path, target: str, options: str):
    rows = [{"question": f"{i}+{i + 1}", "answer": 2 * i + 1} for i in range(8)]
    (folder / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return compile_source(Source(str(folder / "adder.icl"), SHARED.format(target=target, options=options)))


def answer(messages: list[dict]) -> dict:
    """The judge's verdict (its instructions say "You grade"), or the adder's sum."""
    if "You grade" in messages[0]["content"]:
        return {"critique": "fine", "score": 2}
    question = json.loads(messages[-1]["content"])["question"]
    return {"answer": sum(map(float, question.split("+")))}


def test_an_lm_used_by_a_step_and_by_its_judge_keeps_one_rate_and_one_concurrency_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rpm, slots = 5, 2
    fake = FakeClock()
    limiters, starts = [], []  # every limiter made, and the (fake) time of every request start it allowed

    class Limiter(http.RateLimiter):
        def __init__(self, rate: int, *, clock, sleep) -> None:
            super().__init__(rate, clock=fake, sleep=fake.sleep)
            limiters.append(self)

        async def acquire(self) -> None:
            await super().acquire()
            starts.append(fake.now)

    monkeypatch.setattr(http, "RateLimiter", Limiter)
    lock, in_flight, most = threading.Lock(), [0], [0]

    def reply(request) -> dict:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.01)  # long enough for the calls the client lets through to overlap here
        with lock:
            in_flight[0] -= 1
        return answer(request.messages)

    with LoopbackServer(reply) as server:
        compiled = compiled_in(tmp_path, "openai/x", f'base_url: "{server.openai_url}", rpm: {rpm}, '
                                                     f'max_concurrency: {slots}, max_retries: 0')
        report = icldsl.fit(compiled, write=False, report=False).report
        judged = [r for r in server.requests if "You grade" in r.messages[0]["content"]]
    assert report.trained.mean == 1.0 and judged and len(judged) < len(server.requests)
    assert len(limiters) == 1  # one client for lm `m`: the program's, which the judge uses too
    assert len(starts) == len(server.requests)
    busiest = max(sum(start <= t < start + http.WINDOW for t in starts) for start in starts)
    assert busiest == rpm, f"{busiest} requests started within one minute; rpm allows {rpm}"
    assert most[0] == slots, f"{most[0]} requests in flight at once; max_concurrency allows {slots}"


class FakeLocal:
    """Stands in for llama.cpp's client; counts how many are built (each would load the model)."""

    built: list["FakeLocal"] = []

    def __init__(self, model: str, **options) -> None:
        self.name = f"local/{model}"
        self.closed = False
        FakeLocal.built.append(self)

    async def complete(self, request) -> LMResponse:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        return LMResponse(json.dumps(answer(messages)), Usage(prompt_tokens=10, completion_tokens=5))

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture
def fake_local(monkeypatch: pytest.MonkeyPatch) -> list[FakeLocal]:
    FakeLocal.built = []
    monkeypatch.setattr(icldsl.lm.local, "LocalClient", FakeLocal, raising=False)
    return FakeLocal.built


def test_a_local_model_used_by_a_step_and_by_its_judge_is_built_once(tmp_path: Path, fake_local) -> None:
    compiled = compiled_in(tmp_path, "local/smollm2-135m", "n_parallel: 2")
    report = icldsl.fit(compiled, write=False, report=False).report
    assert report.trained.mean == 1.0
    assert len(fake_local) == 1 and fake_local[0].closed  # built once, closed once the fit ended

    program = program_of(compiled, "adder")
    scores = asyncio.run(eval_compiled(compiled, compiled.train(), program))
    assert [s.reward for s in scores.runs[0].scored] == [1.0] * 4  # the judge answered: 2 of 2
    assert len(fake_local) == 2 and fake_local[1].closed  # one more for the evaluation, not two

