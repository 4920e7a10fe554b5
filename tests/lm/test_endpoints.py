"""Several endpoints behind one LM (`base_url: [a, b]`), against real loopback servers:
the least busy takes each request, one that fails is taken out and probed back in, a
server killed mid-run loses no prediction, and neither answers nor cache keys depend on
which endpoint answered."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest

from icldsl.language.compiler import compile_source
from icldsl.lm.base import LMConfigError, LMError, LMRequest, Message
from icldsl.lm.cache import LMCache
from icldsl.lm.cached import CachedClient
from icldsl.lm.endpoints import Endpoints
from icldsl.lm.openai import OpenAIClient
from icldsl.runtime.program import Program
from icldsl.language.source import Source
from icldsl.runtime.state import spec_and_states
from tests.loopback import FORMATS, LoopbackServer, Reply, error_reply

PROGRAM = """
model Q {{ question: str }}
model A {{ answer: int }}
lm solver = "openai/m" {{ base_url: [{urls}], max_retries: 3 }}
program p {{ input q: Q  a = generate A from q  output a }}
"""


def double(request) -> dict:
    """The answer: twice the number in the question."""
    return {"answer": 2 * int(json.loads(request.last_user_message)["question"])}


def slowly(script, delay: float):
    """`script`, each answer sent after `delay` seconds."""
    def answer(request) -> Reply:
        return replace(FORMATS[request.path](json.dumps(script(request)), request), delay=delay)
    return answer


def program_for(*servers: LoopbackServer) -> Program:
    urls = ", ".join(f'"{s.openai_url}"' for s in servers)
    spec, states = spec_and_states(compile_source(Source("e.icl", PROGRAM.format(urls=urls))), "p")
    return Program(spec, states)


def request(text: str) -> LMRequest:
    return LMRequest((Message("user", text),), temperature=0.0)


def test_a_server_killed_mid_run_loses_no_row_and_the_survivor_takes_the_load() -> None:
    n = 120
    with LoopbackServer(slowly(double, 0.02)) as a, LoopbackServer(slowly(double, 0.02)) as b:
        program = program_for(a, b)

        async def go() -> list:
            results = []
            async for prediction in program.map(({"question": str(i)} for i in range(n)), concurrency=16):
                results.append(prediction)
                if len(results) == 30:
                    a.stop()  # connections cut, requests in flight dropped, new ones refused
            await program.aclose()
            return results

        results = asyncio.run(go())
        served_a, served_b = len(a.requests), len(b.requests)
    assert sorted(p.index for p in results) == list(range(n))
    assert all(p.error is None and p.output == {"answer": 2 * p.index} for p in results), \
        [p.error for p in results if p.error]
    # both shared the load before the kill; after it only b answered (and retried whatever a
    # had in flight when it died: on a loaded machine that may be nothing, so no "+ 1")
    assert 10 <= served_a < 60 and served_b >= n - served_a


def test_requests_go_to_the_least_busy_endpoint() -> None:
    with LoopbackServer(slowly(double, 0.05)) as a, LoopbackServer(slowly(double, 0.05)) as b:
        client = OpenAIClient("m", base_url=[a.openai_url, b.openai_url], max_concurrency=8)

        async def go() -> None:
            await asyncio.gather(*(client.complete(request(json.dumps({"question": str(i)}))) for i in range(8)))
            await client.aclose()

        asyncio.run(go())
        assert len(a.requests) == len(b.requests) == 4
        assert a.max_in_flight == b.max_in_flight == 4


def test_a_failing_endpoint_is_taken_out_then_probed_back_in() -> None:
    clock = [0.0]
    broken = {"on": True}

    def flaky(request):
        return error_reply(503, "restarting") if broken["on"] else {"answer": 1}

    with LoopbackServer(flaky) as a, LoopbackServer(lambda r: {"answer": 2}) as b:
        client = OpenAIClient("m", base_url=[a.openai_url, b.openai_url], max_retries=2, backoff_base=0.0,
                              clock=lambda: clock[0])
        endpoints: Endpoints = client._http.endpoints

        async def go() -> list[str]:
            texts = [(await client.complete(request("x"))).text]  # a: 503, then b at once
            assert not endpoints.all[0].healthy and "HTTP 503" in endpoints.all[0].last_error
            for _ in range(3):  # a is out: b takes everything
                texts.append((await client.complete(request("x"))).text)
            clock[0] += 1.5  # past a's cooldown: the next request probes it
            broken["on"] = False
            texts.append((await client.complete(request("x"))).text)
            texts.append((await client.complete(request("x"))).text)  # back in: the least busy again
            await client.aclose()
            return texts

        texts = asyncio.run(go())
    assert [json.loads(t)["answer"] for t in texts] == [2, 2, 2, 2, 1, 1]
    assert len(a.requests) == 3 and len(b.requests) == 4


def test_answers_and_cache_keys_do_not_depend_on_the_endpoint(tmp_path) -> None:
    with LoopbackServer(double) as a, LoopbackServer(double) as b, LMCache(tmp_path / "c.sqlite3") as cache:
        first = CachedClient(OpenAIClient("m", base_url=a.openai_url), cache)
        second = CachedClient(OpenAIClient("m", base_url=[b.openai_url, a.openai_url]), cache)
        ask = request(json.dumps({"question": "21"}))

        async def go():
            answers = [await first.complete(ask), await second.complete(ask)]
            await first.aclose()
            await second.aclose()
            return answers

        one, two = asyncio.run(go())
        assert first.key(ask) == second.key(ask)
        assert one.text == two.text and len(a.requests) == 1 and not b.requests  # the second came from the cache


def test_no_reachable_endpoint_fails_the_call_naming_each_one() -> None:
    with LoopbackServer() as a, LoopbackServer() as b:
        urls = [a.openai_url, b.openai_url]
    client = OpenAIClient("m", base_url=urls, max_retries=2, backoff_base=0.0)  # both servers are gone

    async def go():
        try:
            await client.complete(request("x"))
        finally:
            await client.aclose()

    with pytest.raises(LMError) as info:
        asyncio.run(go())
    message = str(info.value)
    assert info.value.retryable and "no answer after 3 attempt(s)" in message
    assert urls[0] in message or urls[1] in message
    assert "ConnectError" in message


@pytest.mark.parametrize("bad, why", [  # refused as the checker refuses them in a file
    ([], r"expected a URL or a non-empty list of them.*found an empty list \(base_url: are its env\(\.\.\.\) variables set\?\)"),
    (["http://a:1/v1", "http://a:1/v1/"], r"\(http or https, each once\).*found a list of 2"),
    (["http://a:1/v1", "ftp://b/v1"], r"\(http or https, each once\).*found a list of 2"),
])
def test_a_bad_endpoint_list_is_a_config_error(bad, why) -> None:
    with pytest.raises(LMConfigError, match=why):
        OpenAIClient("m", base_url=bad)
