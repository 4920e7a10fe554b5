"""`Program.map` and `abatch`: a prediction or an error per input, never more in flight
than asked, inputs taken as a stream, and errors no input could avoid raised."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from icldsl.language.compiler import compile_source
from icldsl.lm.base import LMConfigError, LMError
from icldsl.runtime.program import Prediction, Program
from icldsl.language.source import Source
from icldsl.runtime.state import spec_and_states
from tests.scripted import ScriptedLM, last_input

SOURCE = """
model Q { n: int }
model A { double: int }
lm m = "openai/x" { base_url: "http://127.0.0.1:9/v1" }
program p { input q: Q  a = generate A from q  output a }
"""


class Counting(ScriptedLM):
    """Doubles `n` after a short wait (longer for odd n, so calls finish out of order),
    fails for n = 13, and records how many calls were in flight at most."""

    def __init__(self) -> None:
        super().__init__(self.answer_for, delay=lambda r: 0.002 * (1 + last_input(r)["n"] % 2))
        self.in_flight = self.most = 0

    def answer_for(self, request):
        n = last_input(request)["n"]
        return LMError("the server said no") if n == 13 else {"double": 2 * n}

    async def complete(self, request):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            return await super().complete(request)
        finally:
            self.in_flight -= 1


def program(lm) -> Program:
    spec, states = spec_and_states(compile_source(Source("m.icl", SOURCE)), "p")
    return Program(spec, states, {"m": lm})


def test_map_gives_every_input_its_prediction_or_error_within_the_concurrency() -> None:
    lm = Counting()
    inputs = [{"n": i} for i in range(40)] + [{"m": 1}]  # the last does not match the input model

    async def go() -> list[Prediction]:
        return [p async for p in program(lm).map(inputs, concurrency=5)]

    results = asyncio.run(go())
    assert sorted(p.index for p in results) == list(range(41))
    assert [p.index for p in results] != list(range(41))  # as they finish, not in order
    by_index = {p.index: p for p in results}
    assert all(by_index[i].output == {"double": 2 * i} for i in range(40) if i != 13)
    assert by_index[13].output is None and "the server said no" in by_index[13].error
    assert by_index[40].output is None and "input does not match `Q`" in by_index[40].error
    assert lm.most == 5


def test_map_takes_inputs_as_it_goes_from_an_endless_stream() -> None:
    taken = []

    def endless():
        for i in itertools.count():
            taken.append(i)
            yield {"n": i}

    async def go() -> list[Prediction]:
        results = []
        async for p in program(Counting()).map(endless(), concurrency=4):
            results.append(p)
            if len(results) == 10:
                break
        return results

    results = asyncio.run(go())
    assert len(results) == 10
    assert len(taken) <= 10 + 2 * 4  # in flight, plus those finished and not yet read


def test_map_reads_an_async_stream() -> None:
    async def rows():
        for i in range(6):
            await asyncio.sleep(0)
            yield {"n": i}

    async def go() -> list[Prediction]:
        return [p async for p in program(Counting()).map(rows(), concurrency=3)]

    assert sorted(p.output["double"] for p in asyncio.run(go())) == [0, 2, 4, 6, 8, 10]


def test_abatch_reports_each_inputs_error_in_order() -> None:
    results = asyncio.run(program(Counting()).abatch([{"n": 13}, {"n": 2}, {"x": 0}]))
    assert [p.index for p in results] == [0, 1, 2]
    assert results[0].error and results[1] == Prediction(1, {"double": 4}) and "`Q`" in results[2].error


def test_an_error_no_input_could_avoid_ends_the_map() -> None:
    class Unusable(ScriptedLM):
        async def complete(self, request):
            raise LMConfigError("no API key")

    async def go() -> None:
        async for _ in program(Unusable(lambda r: {})).map([{"n": 1}] * 20, concurrency=4):
            pass

    with pytest.raises(LMConfigError, match="no API key"):
        asyncio.run(go())


def test_an_lm_without_max_concurrency_allows_what_map_keeps_in_flight() -> None:
    spec, states = spec_and_states(compile_source(Source("m.icl", SOURCE)), "p")
    prog = Program(spec, states)

    async def go() -> int:
        async for _ in prog.map([], concurrency=32):
            pass
        limit = prog.clients.client("m")._http.limits.max_concurrency
        await prog.aclose()
        return limit

    assert asyncio.run(go()) == 32


def test_prepare_connects_the_lms_ready_for_what_map_keeps_in_flight() -> None:
    spec, states = spec_and_states(compile_source(Source("m.icl", SOURCE)), "p")
    prog = Program(spec, states)
    prog.prepare(32)
    http = prog.clients.client("m")._http
    assert http.limits.max_concurrency == 32
    assert [len(e.connections) for e in http.endpoints.all] == [32]  # before any call
    asyncio.run(prog.aclose())
