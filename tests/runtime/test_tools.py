"""Tools on hostile input: the bundled calculator bounds its numbers before computing them,
and a user's tool runs off the event loop with a time limit, the LM reading what happened."""

from __future__ import annotations

import asyncio
import threading

import pytest
from pydantic import BaseModel

from icldsl.language.compiler import compile_source
from icldsl.runtime.program import Program
from icldsl.runtime.tools import TIMEOUT, Tool
from icldsl.language.source import Source
from icldsl.tools import MAX_BITS, calculator
from icldsl.runtime.state import spec_and_states
from tests.scripted import ScriptedLM

AGENT = """
model Q { question: str }
model A { answer: str }
lm m = "local/smollm2-135m"
tool calc = python("icldsl.tools:calculator")
program p { input q: Q  a = agent A from q tools [calc] max_steps 2  output a }
"""


@pytest.mark.parametrize("expression", ["(((9**99)**99)**99)**99", "9**9**9**9", "2**4096", "(2**4000)*(2**4000)",
                                        "-(7**2000)**3"])
def test_the_calculator_refuses_an_enormous_whole_number_before_computing_it(expression: str) -> None:
    with pytest.raises(ValueError, match=f"more than {MAX_BITS} bits"):
        calculator(expression)


@pytest.mark.parametrize(("expression", "message"), [("1.5**(2**4000)", "too large for a float"),
                                                     ("2**4095", "too large for a float"),
                                                     ("(-8)**0.5", "not a real number")])
def test_the_calculator_says_when_an_answer_is_no_float(expression: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        calculator(expression)


def test_the_calculator_still_computes_big_exact_intermediates() -> None:
    assert calculator("10**400 - 10**400 + 1") == 1.0
    assert calculator("9**99") == float(9**99)
    assert calculator("1**(2**4000) + 2**-5000") == 1.0


def test_an_agent_map_whose_tool_is_fed_a_tower_of_powers_finishes_every_row() -> None:
    def answer(request):
        last = request.messages[-1].content
        if last.startswith("Result of calc: "):
            return {"thinking": "", "action": {"tool": "finish", "output": {"answer": last}}}
        return {"thinking": "", "action": {"tool": "calc", "arguments": {"expression": "(((9**99)**99)**99)**99"}}}

    spec, states = spec_and_states(compile_source(Source("t.icl", AGENT)), "p")
    program = Program(spec, states, {"m": ScriptedLM(answer)})
    predictions = asyncio.run(program.abatch([{"question": str(i)} for i in range(20)], concurrency=20))
    assert [p.output for p in predictions] == [
        {"answer": f"Result of calc: error: ValueError: the result has more than {MAX_BITS} bits"}] * 20


class Nothing(BaseModel):
    pass


def test_a_tool_runs_off_the_event_loop_and_a_slow_one_times_out_while_the_loop_goes_on() -> None:
    release = threading.Event()
    ran_in: list[threading.Thread] = []

    def stuck() -> str:
        ran_in.append(threading.current_thread())
        release.wait(60)
        return "late"

    async def main() -> tuple[str, int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            return await Tool("stuck", stuck, Nothing, "", timeout=0.3).call({}), ticks
        finally:
            ticker.cancel()
            release.set()

    text, ticks = asyncio.run(main())
    assert text == "error: the tool did not finish in 0.3 seconds"
    assert ran_in and ran_in[0] is not threading.main_thread() and ran_in[0].daemon
    assert ticks > 3  # the event loop ran while the tool was stuck
    assert TIMEOUT == 30.0  # the README's figure


def test_an_async_tool_times_out_and_errors_of_any_tool_reach_the_lm() -> None:
    async def slow() -> str:
        await asyncio.sleep(60)
        return "late"

    def leaves() -> None:
        raise SystemExit("bye")

    async def main() -> list[str]:
        return [await Tool("slow", slow, Nothing, "", timeout=0.1).call({}),
                await Tool("leaves", leaves, Nothing, "").call({}),
                await Tool("answers", lambda: 12, Nothing, "").call({})]

    assert asyncio.run(main()) == ["error: the tool did not finish in 0.1 seconds", "error: SystemExit: bye", "12"]
