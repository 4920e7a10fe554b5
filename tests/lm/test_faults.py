"""An evaluation of 200 examples through a loopback server that injects faults
(500s, 429s with Retry-After, answers slower than the timeout, malformed, truncated
and wrongly typed answers, bodies that are not JSON), once per wire format: every
example ends as a right prediction or a counted failure, and nothing is lost."""

from __future__ import annotations

import asyncio
import json

import pytest

from icldsl.language.compiler import compile_source
from icldsl.datasets.base import Example
from icldsl.lm.anthropic import AnthropicClient
from icldsl.lm.ollama import OllamaClient
from icldsl.lm.openai import OpenAIClient
from icldsl.runtime.program import Program
from icldsl.language.source import Source
from icldsl.training.rewards import exact_match
from icldsl.training.trainer import evaluate
from icldsl.runtime.state import spec_and_states
from tests.loopback import FAULT_KINDS, Faulty, LoopbackServer, Request

N = 200
PROGRAM = """
model Q { question: str }
model A { thinking: str "steps"  answer: float }
lm solver = "openai/m"
program p { input q: Q  a = generate A from q  output a }
"""
CLIENTS = {
    "openai": lambda srv, **kw: OpenAIClient("m", base_url=srv.openai_url, **kw),
    "ollama": lambda srv, **kw: OllamaClient("m", base_url=srv.url, **kw),
    "anthropic": lambda srv, **kw: AnthropicClient("m", base_url=srv.url, **kw),
}


def solve(request: Request) -> dict:
    """The right answer to the input in the request (the last user turn holding an
    object: after a refused answer, a turn showing the error follows it)."""
    for message in reversed(request.messages):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str) and content.startswith("{"):
            number = int(json.loads(content)["question"].split()[-1])
            return {"thinking": f"The question asks for {number}, written out in a long sentence.",
                    "answer": number}
    raise AssertionError("no input in the request")


@pytest.mark.parametrize("provider", list(CLIENTS))
def test_an_evaluation_through_a_faulty_server_accounts_for_every_example(provider: str) -> None:
    faulty = Faulty(solve, seed=7, slow_delay=1.5)
    examples = [Example({"question": f"what is {i}"}, {"thinking": "", "answer": float(i)}, f"faults:{i}")
                for i in range(N)]
    with LoopbackServer(faulty) as server:
        client = CLIENTS[provider](server, timeout=0.4, max_retries=4, backoff_base=0.01, max_concurrency=16)
        spec, states = spec_and_states(compile_source(Source("faults.icl", PROGRAM)), "p")
        program = Program(spec, states, {"solver": client})

        async def go():
            try:
                return await evaluate(program, examples, exact_match(in_mask=["answer"]), concurrency=16)
            finally:
                await client.aclose()

        result = asyncio.run(go())

    # every kind of fault happened, and more than a fifth of the calls were faulty
    assert all(faulty.counts[kind] > 0 for kind in FAULT_KINDS), faulty.counts
    assert sum(faulty.counts[k] for k in FAULT_KINDS) > 0.3 * sum(faulty.counts.values())
    # every example is accounted for, in order: a right prediction or a counted failure
    assert [s.example.origin for s in result.scored] == [e.origin for e in examples]
    predicted = [s for s in result.scored if s.trace.output is not None]
    failed = [s for s in result.scored if s.trace.output is None]
    assert len(predicted) + len(failed) == N and result.failures == len(failed)
    assert all(s.reward == 1.0 for s in predicted)  # a repaired answer is never a wrong one
    assert all(s.reward == 0.0 and s.trace.error for s in failed)
    assert result.reward == pytest.approx(len(predicted) / N)
    # retries, repair and the one re-ask save nearly all of them
    assert len(predicted) >= 0.9 * N, [s.trace.error for s in failed]
    assert result.usage.failures == len(failed)
    assert result.usage.calls >= N
