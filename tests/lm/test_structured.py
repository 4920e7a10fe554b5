"""Outputs that parse, through a whole program on real clients: lenient reading,
the one retry that shows the model its error, the fallback LM, and the checks
on `fallback` and keys."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from icldsl.language.compiler import compile_source
from icldsl.language.diagnostics import CheckError
from icldsl.lm.base import LMError
from icldsl.runtime.program import PredictionError, Program
from icldsl.language.source import Source
from icldsl.runtime.state import spec_and_states
from tests.loopback import LoopbackServer, Reply, error_reply

PROGRAM = """
model Q {{ question: str }}
model A {{ thinking: str  answer: float }}
{lms}
program p {{ input q: Q  a = generate A from q using solver  output a }}
"""


def program(lms: str) -> Program:
    spec, states = spec_and_states(compile_source(Source("t.icl", PROGRAM.format(lms=lms))), "p")
    return Program(spec, states)


def call(p: Program, question: str = "2+2?") -> dict:
    async def go() -> dict:
        try:
            return (await p.acall(question=question)).model_dump()
        finally:
            await p.aclose()

    return asyncio.run(go())


def solver(server: LoopbackServer, provider: str = "ollama", extra: str = "") -> str:
    url = server.openai_url if provider in ("openai", "vllm") else server.url
    return f'lm solver = "{provider}/m" {{ base_url: "{url}", max_retries: 0{extra} }}'


def test_an_answer_in_prose_and_a_fence_is_read_in_one_call(server: LoopbackServer) -> None:
    server.push("Sure!\n```json\n{'thinking': 'add', 'answer': 4,}\n```")
    assert call(program(solver(server))) == {"thinking": "add", "answer": 4.0}
    assert len(server.requests) == 1


@pytest.mark.parametrize("provider", ["openai", "ollama", "anthropic"])
def test_an_invalid_answer_is_retried_once_showing_the_model_its_error(
    server: LoopbackServer, provider: str
) -> None:
    server.push({"thinking": "add", "answer": "four"}, {"thinking": "add", "answer": 4})
    assert call(program(solver(server, provider))) == {"thinking": "add", "answer": 4.0}
    first, second = server.requests
    sent = [m for m in second.messages]
    assert sent[:-2] == first.messages  # the same conversation, then two more turns
    assert sent[-2]["role"] == "assistant" and "four" in sent[-2]["content"]
    assert sent[-1]["role"] == "user"
    assert "answer: Input should be a valid number" in sent[-1]["content"]
    assert "Answer the same input again" in sent[-1]["content"]


def test_a_truncated_answer_is_closed_then_retried_for_the_missing_field(server: LoopbackServer) -> None:
    server.push('{"thinking": "Janet has 16 eggs and', '{"thinking": "short", "answer": 18}')
    assert call(program(solver(server))) == {"thinking": "short", "answer": 18.0}
    assert "answer: Field required" in server.requests[1].messages[-1]["content"]


def test_there_is_only_one_retry(server: LoopbackServer) -> None:
    server.push("no idea", "still no idea")
    with pytest.raises(PredictionError, match="answer is not JSON"):
        call(program(solver(server)))
    assert len(server.requests) == 2


def test_the_fallback_lm_answers_when_the_primary_fails(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.script = lambda r: error_reply(503, "down") if r.path == "/api/chat" else {"thinking": "b", "answer": 1}
    lms = solver(server, "ollama", ", fallback: backup") + "\n" + \
        f'lm backup = "anthropic/claude-x" {{ base_url: "{server.url}", api_key: env("ICLDSL_TEST_KEY") }}'
    p = program(lms)
    assert [lm.name for lm in p.spec.lms] == ["backup", "solver"]  # the fallback travels with the program
    caplog.set_level(logging.WARNING)
    assert call(p) == {"thinking": "b", "answer": 1.0}
    assert [r.path for r in server.requests] == ["/api/chat", "/v1/messages"]
    assert "trying its fallback anthropic/claude-x" in caplog.text


def test_when_the_fallback_fails_too_both_errors_are_reported(server: LoopbackServer) -> None:
    server.script = lambda r: error_reply(500, f"down at {r.path}")
    lms = solver(server, "ollama", ", fallback: backup") + "\n" + \
        f'lm backup = "openai/x" {{ base_url: "{server.openai_url}", max_retries: 0 }}'
    with pytest.raises(PredictionError) as info:
        call(program(lms))
    assert "down at /api/chat" in str(info.value) and "the fallback failed too" in str(info.value)
    assert "down at /v1/chat/completions" in str(info.value)


def test_fallback_only_covers_lm_errors_not_config_errors() -> None:
    from icldsl.lm.fallback import FallbackClient
    from tests.scripted import ScriptedLM

    primary = ScriptedLM(lambda r: LMError("primary down", retryable=True))
    backup = ScriptedLM(lambda r: {"thinking": "", "answer": 2})
    client = FallbackClient(primary, backup, "backup")
    from icldsl.lm.base import LMRequest, Message

    response = asyncio.run(client.complete(LMRequest((Message("user", "{}"),))))
    assert json.loads(response.text)["answer"] == 2 and len(primary.requests) == len(backup.requests) == 1
    assert response.answered_by == "backup"
    asyncio.run(client.aclose())
    assert primary.closed and not backup.closed  # the fallback belongs to its own lm


@pytest.mark.parametrize(
    ("lms", "code", "message"),
    [
        ('lm solver = "openai/x" { api_key: "sk-live-123" }', "secret-in-source", "written in the file"),
        ('lm solver = "openai/x" { fallback: "backup" }', "wrong-type", "must be the name of an lm"),
        ('lm solver = "openai/x" { fallback: bakup }\nlm backup = "ollama/y"', "undefined-name", "unknown lm `bakup`"),
        ('lm solver = "openai/x" { fallback: solver }', "invalid-value", "falls back to itself"),
    ],
)
def test_the_checker_refuses_literal_keys_and_bad_fallbacks(lms: str, code: str, message: str) -> None:
    with pytest.raises(CheckError) as info:
        compile_source(Source("t.icl", PROGRAM.format(lms=lms)))
    [diagnostic] = [d for d in info.value.diagnostics if d.severity == "error"]
    assert diagnostic.code == code and message in diagnostic.message
    assert "sk-live-123" not in diagnostic.message + (diagnostic.help or "")


def test_an_lm_used_only_as_a_fallback_is_not_unused() -> None:
    lms = 'lm solver = "openai/x" { fallback: backup }\nlm backup = "ollama/y"'
    warnings = compile_source(Source("t.icl", PROGRAM.format(lms=lms))).warnings
    assert not [w for w in warnings if "backup" in w.message]


def test_a_slow_primary_hands_over_after_its_total_timeout(server: LoopbackServer) -> None:
    server.script = lambda r: Reply(delay=3.0) if r.path == "/api/chat" else {"thinking": "", "answer": 7}
    lms = solver(server, "ollama", ", total_timeout: 0.3, fallback: backup") + "\n" + \
        f'lm backup = "vllm/x" {{ base_url: "{server.openai_url}" }}'
    assert call(program(lms))["answer"] == 7.0


def test_the_retry_spends_and_reports_the_usage_of_both_calls() -> None:
    from tests.scripted import ScriptedLM

    answers = iter(['{"thinking": "t", "answer": "x"}', '{"thinking": "t", "answer": 3}'])
    lm = ScriptedLM(lambda r: next(answers))  # 10 prompt and 5 completion tokens a call
    spec, states = spec_and_states(compile_source(Source("t.icl", PROGRAM.format(lms='lm solver = "openai/x"'))), "p")
    trace = asyncio.run(Program(spec, states, {"solver": lm}).run({"question": "q"}))
    record = trace.steps["p/a"]
    assert record.output == {"thinking": "t", "answer": 3.0}
    assert (record.usage.prompt_tokens, record.usage.completion_tokens) == (20, 10)
