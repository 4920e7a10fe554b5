"""Step kinds and the graph: chain_of_thought, decide, branch, agent, merged inputs,
several outputs, concurrency, imports and tools, against a scripted LM."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from icldsl.language.compiler import compile_file, compile_source
from icldsl.language.diagnostics import CheckError
from icldsl.lm.base import LMError
from icldsl.runtime.program import Program
from icldsl.runtime.state import Demo, spec_and_states
from icldsl.language.source import Source
from icldsl.training.session import program_of
from tests.scripted import ScriptedLM, last_input


def program(text: str, lm: ScriptedLM, name: str = "p") -> Program:
    spec, states = spec_and_states(compile_source(Source("t.icl", text)), name)
    return Program(spec, states, {l.name: lm for l in spec.lms})


def run(p: Program, x: dict):
    return asyncio.run(p.run(x))


COT = """
model Q { question: str }
model A { answer: float "The number" }
lm m = "local/smollm2-135m"
program p { input q: Q  a = chain_of_thought A from q  output a }
"""


def test_chain_of_thought_thinks_first_and_yields_the_model() -> None:
    lm = ScriptedLM(lambda r: {"thinking": "2 and 3 make 5", "answer": 5})
    p = program(COT, lm)
    trace = run(p, {"question": "2+3?"})
    assert list(lm.requests[0].schema["properties"]) == ["thinking", "answer"]
    assert trace.output == {"answer": 5.0}
    assert trace.steps["p/a"].output == {"thinking": "2 and 3 make 5", "answer": 5.0}  # demos keep the reasoning


SUPPORT = """
model Ticket { text: str }
model Route { team: enum("billing", "technical", "other")  urgent: bool }
model Reply { reply: str }
lm m = "local/smollm2-135m"
program p {
    input t: Ticket
    route = decide Route from t
    answer = branch route.team {
        "billing" => generate Reply from t + route instructions "BILLING"
        "technical" => generate Reply from t instructions "TECHNICAL"
        _ => generate Reply from t instructions "OTHER"
    }
    output answer, route
}
"""


def support_lm() -> ScriptedLM:
    def answer(request):
        system = request.messages[0].content
        if "team" in request.schema["properties"]:
            text = last_input(request)["text"]
            return {"team": text if text in ("billing", "technical") else "other", "urgent": text == "technical"}
        return {"reply": system.split("\n")[0]}
    return ScriptedLM(answer)


@pytest.mark.parametrize("text, arm", [("billing", "BILLING"), ("technical", "TECHNICAL"), ("hello", "OTHER")])
def test_branch_runs_only_the_chosen_arm(text: str, arm: str) -> None:
    lm = support_lm()
    trace = run(program(SUPPORT, lm), {"text": text})
    assert trace.output["reply"] == arm
    assert len(lm.requests) == 2  # the decision and one arm
    assert [p for p in trace.steps] == ["p/route", f"p/answer.{'default' if arm == 'OTHER' else text}"]
    assert set(trace.output) == {"reply", "team", "urgent"}  # several outputs, merged


def test_merged_inputs_reach_the_step() -> None:
    lm = support_lm()
    run(program(SUPPORT, lm), {"text": "billing"})
    assert last_input(lm.requests[1]) == {"text": "billing", "team": "billing", "urgent": False}


def test_a_branch_without_a_matching_arm_fails_the_prediction() -> None:
    text = SUPPORT.replace('_ => generate Reply from t instructions "OTHER"', "")
    trace = run(program(text, support_lm()), {"text": "hello"})
    assert trace.output is None and "no arm of `answer` for 'other'" in trace.error


def test_independent_steps_run_concurrently() -> None:
    in_flight, peak = 0, 0

    async def slow(request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1

    class Tracking(ScriptedLM):
        async def complete(self, request):
            await slow(request)
            return await super().complete(request)

    text = """
model Q { question: str }
model A { a: str }
model B { b: str }
model C { c: str }
lm m = "local/smollm2-135m"
program p {
    input q: Q
    a = generate A from q
    b = generate B from q
    c = generate C from a + b
    output c
}
"""
    lm = Tracking(lambda r: {k: "x" for k in r.schema["properties"]})
    trace = run(program(text, lm), {"question": "?"})
    assert trace.output == {"c": "x"}
    assert peak == 2  # a and b together; c after both
    assert last_input(lm.requests[2]) == {"a": "x", "b": "x"}


def test_steps_may_be_written_in_any_order() -> None:
    text = """
model Q { question: str }
model A { a: str }
model B { b: str }
lm m = "local/smollm2-135m"
program p {
    input q: Q
    b = generate B from a
    a = generate A from q
    output b
}
"""
    lm = ScriptedLM(lambda r: {k: "x" for k in r.schema["properties"]})
    assert run(program(text, lm), {"question": "?"}).output == {"b": "x"}


AGENT = """
model Q { question: str }
model A { answer: float }
lm m = "local/smollm2-135m"
tool calc = python("icldsl.tools:calculator")
program p { input q: Q  a = agent A from q tools [calc] max_steps 3  output a }
"""


def test_agent_calls_its_tool_then_answers() -> None:
    def answer(request):
        last = request.messages[-1].content
        if last.startswith("Result of calc: "):
            return {"thinking": "done", "action": {"tool": "finish", "output": {"answer": float(last.split(": ")[1])}}}
        return {"thinking": "compute", "action": {"tool": "calc", "arguments": {"expression": "(48 / 2) + 48"}}}

    lm = ScriptedLM(answer)
    trace = run(program(AGENT, lm), {"question": "Natalia..."})
    assert trace.output == {"answer": 72.0}
    assert [m.role for m in lm.requests[1].messages][-2:] == ["assistant", "user"]
    assert lm.requests[1].messages[-1].content == "Result of calc: 72.0"
    assert trace.steps["p/a"].usage.completion_tokens == 10


def test_agent_reads_tool_errors_and_answers_when_out_of_steps() -> None:
    def answer(request):
        if "action" not in request.schema["properties"]:
            return {"answer": 1}
        return {"thinking": "again", "action": {"tool": "calc", "arguments": {"expression": "import os"}}}

    lm = ScriptedLM(answer)
    trace = run(program(AGENT, lm), {"question": "?"})
    assert trace.output == {"answer": 1.0}
    assert len(lm.requests) == 4  # three turns, then the forced answer
    assert lm.requests[1].messages[-1].content.startswith("Result of calc: error: SyntaxError")
    assert lm.requests[3].messages[-1].content == "No more tool calls: give the final answer now."


def test_agent_lm_failure_is_a_failed_prediction() -> None:
    trace = run(program(AGENT, ScriptedLM(lambda r: LMError("down"))), {"question": "?"})
    assert trace.output is None and "down" in trace.error


def test_agent_examples_are_shown_as_finishing_turns() -> None:
    lm = ScriptedLM(lambda r: {"thinking": "", "action": {"tool": "finish", "output": {"answer": 2}}})
    p = program(AGENT, lm)
    p = p.with_states({"p/a": p.states["p/a"].with_examples((Demo({"question": "1+1"}, {"answer": 2.0}, 1.0, "f:1"),))})
    run(p, {"question": "?"})
    shown = json.loads(lm.requests[0].messages[2].content)
    assert shown == {"thinking": "", "action": {"tool": "finish", "output": {"answer": 2.0}}}


def test_recursive_models_validate_nested_output() -> None:
    text = """
model Q { question: str }
model Node { label: str(max_length: 5)  children: list[Node](max_items: 2) }
lm m = "local/smollm2-135m"
program p { input q: Q  tree = generate Node from q  output tree }
"""
    good = {"label": "root", "children": [{"label": "leaf", "children": []}]}
    assert run(program(text, ScriptedLM(lambda r: good)), {"question": "?"}).output == good
    bad = {"label": "root", "children": [{"label": "far too long", "children": []}]}
    trace = run(program(text, ScriptedLM(lambda r: bad)), {"question": "?"})
    assert trace.output is None and "children.0.label" in trace.error


def test_imports_share_models_lms_and_tools(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "common.icl").write_text(
        'model Q { question: str }\nlm m = "local/smollm2-135m"\ntool calc = python("icldsl.tools:calculator")\n')
    (tmp_path / "main.icl").write_text(
        'import "shared/common.icl"\nmodel A { answer: float }\n'
        "program p { input q: Q  a = agent A from q tools [calc]  output a }\n")
    compiled = compile_file(tmp_path / "main.icl")
    assert compiled.programs["p"][0].tools[0].ref == "icldsl.tools:calculator"


def test_a_tool_beside_the_file_is_found_and_a_missing_one_reported(tmp_path: Path) -> None:
    (tmp_path / "my_tools_for_test.py").write_text('def shout(text: str) -> str:\n    """Upper-case."""\n'
                                                   "    return text.upper()\n")
    text = AGENT.replace("icldsl.tools:calculator", "my_tools_for_test:shout")
    (tmp_path / "p.icl").write_text(text)
    compiled = compile_file(tmp_path / "p.icl")
    lm = ScriptedLM(lambda r: {"thinking": "", "action": {"tool": "finish", "output": {"answer": 1}}})
    p = program_of(compiled, "p", {"m": lm})
    assert p.tools()["calc"].description == "Upper-case."
    (tmp_path / "q.icl").write_text(AGENT.replace("icldsl.tools:calculator", "no_such_module_xyz:f"))
    with pytest.raises(CheckError) as info:
        compile_file(tmp_path / "q.icl")
    (d,) = info.value.diagnostics
    assert d.code == "unknown-function" and "no_such_module_xyz" in d.message and d.span.line == 5
