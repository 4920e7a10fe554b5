"""OpenAIClient against a real loopback HTTP server."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

import pytest

from icldsl.lm.base import LMConfigError, LMError, LMRequest, LMResponse, Message, Usage
from icldsl.lm.openai import OpenAIClient, schema_name
from icldsl.language.catalogue.lms import PROVIDERS
from tests.fakes import Sleeps
from tests.loopback import LoopbackServer, Reply, error_reply, openai_reply

KEY = "sk-test-0123456789abcdef"
SCHEMA = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
}
REQUEST = LMRequest(
    messages=(Message("system", "Answer briefly."), Message("user", "What is 2+2?")),
    schema=SCHEMA,
    schema_name="Math Answer.v1",
    temperature=0.2,
    max_tokens=50,
    seed=7,
)
PLAIN = LMRequest(messages=(Message("user", "hi"),))


def run(server: LoopbackServer, request: LMRequest = PLAIN, **options: Any) -> LMResponse:
    """One `complete` call with a fresh client that is always closed."""
    options.setdefault("backoff_base", 0.001)
    options.setdefault("base_url", server.openai_url)

    async def go() -> LMResponse:
        async with OpenAIClient("test-model", **options) as client:
            return await client.complete(request)

    return asyncio.run(go())


def fail(server: LoopbackServer, request: LMRequest = PLAIN, **options: Any) -> LMError:
    with pytest.raises(LMError) as info:
        run(server, request, **options)
    return info.value


# -- success --------------------------------------------------------------------


def test_success_sends_the_openai_request_and_reads_text_and_usage(server: LoopbackServer) -> None:
    server.push(openai_reply('{"answer": "4"}', prompt_tokens=21, completion_tokens=5))
    response = run(server, REQUEST, api_key=KEY)

    assert response == LMResponse(text='{"answer": "4"}', usage=Usage(21, 5))
    [sent] = server.requests
    assert (sent.method, sent.path) == ("POST", "/v1/chat/completions")
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        "temperature": 0.2,
        "max_tokens": 50,
        "seed": 7,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "Math_Answer_v1", "schema": SCHEMA, "strict": False},
        },
    }


def test_without_key_or_options_sends_no_authorization_and_no_optional_fields(
    server: LoopbackServer,
) -> None:
    server.push("hello")
    assert run(server).text == "hello"
    [sent] = server.requests
    assert "authorization" not in sent.headers
    assert sent.json == {"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}


def test_base_url_and_key_come_from_the_environment(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.push("from env")

    async def go() -> str:
        async with OpenAIClient("m", backoff_base=0.001) as client:
            assert client.name == "openai/m"
            return (await client.complete(PLAIN)).text

    assert asyncio.run(go()) == "from env"
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_missing_usage_counts_as_zero(server: LoopbackServer) -> None:
    server.push(Reply(body={"choices": [{"message": {"role": "assistant", "content": "x"}}]}))
    assert run(server).usage == Usage(0, 0)


def test_a_callable_script_sees_the_last_user_message(server: LoopbackServer) -> None:
    server.script = lambda request: {"answer": request.last_user_message.upper()}
    turns = (Message("user", "first"), Message("assistant", "a"), Message("user", "shout"))
    request = LMRequest(messages=turns)
    response = run(server, request)
    assert response.text == '{"answer": "SHOUT"}'
    assert response.usage.prompt_tokens == 3  # the loopback counts words of the prompt


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Math Answer.v1", "Math_Answer_v1"),
        ("ok-name_2", "ok-name_2"),
        ("", "output"),
        ("x" * 80, "x" * 64),
    ],
)
def test_schema_name_is_sanitized(raw: str, expected: str) -> None:
    assert schema_name(raw) == expected


# -- configuration --------------------------------------------------------------


@pytest.mark.parametrize("base_url", [None, "https://api.openai.com/v1"])
def test_missing_key_for_the_official_host_is_a_config_error(base_url: str | None) -> None:
    with pytest.raises(LMConfigError, match="OPENAI_API_KEY"):
        OpenAIClient("gpt-4.1-mini", base_url=base_url)


@pytest.mark.parametrize(
    "options",
    [
        {"base_url": "localhost:8000/v1"},
        {"max_concurrency": 0},
        {"max_concurrency": 100_000_000},  # above options.MAX_CONCURRENCY: refused before any transport is made
        {"timeout": 0},
        {"max_retries": -1},
    ],
)
def test_impossible_settings_are_config_errors(options: dict[str, Any]) -> None:
    options.setdefault("base_url", "http://127.0.0.1:9/v1")
    with pytest.raises(LMConfigError):
        OpenAIClient("m", **options)


def test_options_are_constructor_keywords_with_the_declared_defaults() -> None:
    params = inspect.signature(OpenAIClient).parameters
    declared = PROVIDERS["openai"].client_options
    for name in declared.options:
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default is None, name  # the default is the declaration's, not a second one
    limits = OpenAIClient("m", base_url="http://127.0.0.1:9/v1")._http.limits
    assert {name: getattr(limits, name) for name in declared.defaults} == dict(declared.defaults)


# -- retries --------------------------------------------------------------------


def test_retry_after_is_honoured(server: LoopbackServer) -> None:
    server.push(error_reply(429, "slow down", {"Retry-After": "1"}), "ok")
    start = time.monotonic()
    assert run(server, backoff_base=0.001).text == "ok"
    waited = time.monotonic() - start
    assert len(server.requests) == 2
    assert 0.9 <= waited < 10  # the backoff alone would have been ~1 ms


@pytest.mark.parametrize(("header", "expected"), [("2", 2.0), ("0.5", 0.5), ("3600", 60.0)])
def test_retry_after_seconds_are_used_and_capped(
    server: LoopbackServer, header: str, expected: float
) -> None:
    server.push(Reply(status=429, headers={"Retry-After": header}), "ok")
    sleeps = Sleeps()
    assert run(server, sleep=sleeps).text == "ok"
    assert sleeps.delays == [expected]


def test_server_errors_are_retried_with_growing_backoff(server: LoopbackServer) -> None:
    server.push(error_reply(500, "boom"), Reply(status=503, headers={"Retry-After": "soon"}), "ok")
    sleeps = Sleeps()
    assert run(server, backoff_base=0.1, sleep=sleeps).text == "ok"
    assert len(server.requests) == 3
    first, second = sleeps.delays  # an unparsable Retry-After falls back to backoff
    assert 0.1 <= first <= 0.2
    assert 0.2 <= second <= 0.3


def test_exhausted_retries_raise_a_retryable_error_naming_the_last_status(
    server: LoopbackServer,
) -> None:
    server.push(*[error_reply(502, "bad gateway")] * 3)
    error = fail(server, max_retries=2)
    assert error.retryable
    assert "3 attempt" in str(error)
    assert "HTTP 502" in str(error) and "bad gateway" in str(error)
    assert len(server.requests) == 3


def test_a_slow_server_times_out_and_is_retried(server: LoopbackServer) -> None:
    server.push(Reply(delay=5.0), Reply(delay=5.0))
    error = fail(server, timeout=0.2, max_retries=1)
    assert error.retryable
    assert "timed out" in str(error)
    assert len(server.requests) == 2


def test_a_dropped_connection_is_retried(server: LoopbackServer) -> None:
    server.push(Reply(drop=True), "after drop")
    assert run(server).text == "after drop"
    assert len(server.requests) == 2


def test_an_unreachable_server_fails_retryably() -> None:
    with LoopbackServer() as srv:
        url = srv.openai_url
    sleeps = Sleeps()

    async def go() -> None:
        async with OpenAIClient("m", base_url=url, max_retries=2, sleep=sleeps) as client:
            await client.complete(PLAIN)

    with pytest.raises(LMError, match="connection failed") as info:
        asyncio.run(go())
    assert info.value.retryable
    assert len(sleeps.delays) == 2


# -- errors that need the user ---------------------------------------------------


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_fails_at_once_without_revealing_it(
    server: LoopbackServer, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    server.push(error_reply(status, f"Incorrect API key provided: {KEY}."))
    caplog.set_level(logging.DEBUG)
    error = fail(server, api_key=KEY)
    assert not error.retryable
    assert len(server.requests) == 1
    assert "OPENAI_API_KEY" in str(error) and f"HTTP {status}" in str(error)
    assert KEY not in str(error)
    assert "Incorrect API key provided" in str(error)
    assert KEY not in caplog.text


def test_a_refusal_without_a_key_says_to_set_one(server: LoopbackServer) -> None:
    server.push(error_reply(401, "missing bearer token"))
    error = fail(server)
    assert "no API key was sent" in str(error)


def test_not_found_points_at_the_model_and_base_url(server: LoopbackServer) -> None:
    server.push(error_reply(404, "model 'test-model' not found"))
    error = fail(server)
    assert not error.retryable
    assert len(server.requests) == 1
    assert "'test-model'" in str(error) and server.openai_url in str(error)
    assert "not found" in str(error)


def test_bad_request_carries_the_servers_message_truncated(server: LoopbackServer) -> None:
    server.push(error_reply(400, "Invalid schema for response_format: " + "z" * 5000))
    error = fail(server)
    assert not error.retryable
    assert len(server.requests) == 1
    assert "Invalid schema for response_format" in str(error)
    assert len(str(error)) < 600


def test_the_key_never_appears_in_retry_logs_or_errors(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.push(*[error_reply(500, f"internal error for key {KEY}")] * 2)
    caplog.set_level(logging.DEBUG, logger="icldsl.lm.openai")
    error = fail(server, api_key=KEY, max_retries=1)
    assert "retry 1 of 1" in caplog.text
    assert "internal error for key" in caplog.text and "internal error for key" in str(error)
    assert KEY not in caplog.text and KEY not in str(error)


def test_a_token_in_the_url_is_sent_before_the_path_and_never_shown(
    server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.push(openai_reply("ok"), error_reply(500, "down"), error_reply(404, "no such model"))
    caplog.set_level(logging.DEBUG)
    url = f"{server.openai_url}?api-key=tok-sekrit&v=2"
    assert run(server, base_url=url).text == "ok"
    error = fail(server, base_url=url, max_retries=1)
    assert [(r.path, r.query) for r in server.requests] == [("/v1/chat/completions", "api-key=tok-sekrit&v=2")] * 3
    assert "HTTP 404" in str(error) and f"{server.openai_url}/chat/completions?api-key=<credentials>&v=2" in str(error)
    assert "retry 1 of 1" in caplog.text and "POST" in caplog.text
    assert "sekrit" not in str(error) + caplog.text


def test_basic_auth_a_server_echoes_is_redacted(server: LoopbackServer, caplog: pytest.LogCaptureFixture) -> None:
    import base64

    token = base64.b64encode(b"bob:hunter22").decode()
    echo = (f"Basic authentication failed: bad header Authorization: Basic {token}; "
            f"also saw Basic {base64.b64encode(b'eve:other99').decode()} and Bearer sk-abc_123XYZ")
    server.push(error_reply(500, echo), error_reply(401, echo))
    caplog.set_level(logging.DEBUG)
    error = fail(server, base_url=server.openai_url.replace("://", "://bob:hunter22@"), max_retries=1)
    assert server.requests[0].headers["authorization"] == f"Basic {token}"
    assert "HTTP 401" in str(error) and "Authorization: Basic <credentials>" in str(error)
    assert "Basic authentication failed" in str(error) and "Bearer <credentials>" in str(error)
    assert "retry 1 of 1" in caplog.text
    for text in (str(error), caplog.text):
        assert token not in text and "hunter22" not in text and "ZXZlOm90aGVyOTk" not in text and "sk-abc" not in text


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body="<html>not json</html>"),
        Reply(body={"choices": []}),
        Reply(body={"object": "list"}),
        Reply(body=["not", "an", "object"]),
        Reply(body={"choices": [{"message": {"role": "assistant", "content": None}}]}),
        Reply(body={"choices": [{"message": {"content": None, "refusal": "I can't"}}]}),
    ],
)
def test_an_unexpected_body_is_a_non_retryable_error(server: LoopbackServer, reply: Reply) -> None:
    server.push(reply)
    error = fail(server)
    assert not error.retryable
    assert len(server.requests) == 1


# -- concurrency ----------------------------------------------------------------


@pytest.mark.parametrize(("limit", "calls"), [(2, 6), (6, 6)])
def test_in_flight_requests_are_bounded(server: LoopbackServer, limit: int, calls: int) -> None:
    server.script = lambda request: Reply(delay=0.3, body=openai_reply("slow").body)

    async def go() -> list[LMResponse]:
        async with OpenAIClient("m", base_url=server.openai_url, max_concurrency=limit) as client:
            return await asyncio.gather(*(client.complete(PLAIN) for _ in range(calls)))

    assert [r.text for r in asyncio.run(go())] == ["slow"] * calls
    assert len(server.requests) == calls
    if limit < calls:
        assert server.max_in_flight == limit
    else:  # the control: without a tighter bound the server does see them overlap
        assert server.max_in_flight > 2


def test_prepare_makes_the_transports_of_the_calls_in_flight_before_the_first(server: LoopbackServer) -> None:
    server.script = lambda request: Reply(delay=0.1, body=openai_reply("ok").body)
    client = OpenAIClient("m", base_url=server.openai_url, max_concurrency=4)
    client.prepare()
    (endpoint,) = client._http.endpoints.all
    assert len(endpoint.connections) == 4 and not server.requests  # made, none used yet

    async def go() -> list[LMResponse]:
        async with client:
            answers = await asyncio.gather(*(client.complete(PLAIN) for _ in range(8)))
            assert len(endpoint.connections) == 4  # the calls found them: none made on the way
            return answers

    assert [r.text for r in asyncio.run(go())] == ["ok"] * 8
    assert server.max_in_flight == 4


def test_prepare_shares_the_transports_between_endpoints() -> None:
    client = OpenAIClient("m", base_url=["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"], max_concurrency=5)
    client.prepare()
    assert [len(e.connections) for e in client._http.endpoints.all] == [3, 3]
    asyncio.run(client.aclose())
    many = OpenAIClient("m", base_url=[f"http://127.0.0.1:{port}/v1" for port in range(1, 2001)], max_concurrency=4)
    many.prepare()
    assert [len(e.connections) for e in many._http.endpoints.all[:6]] == [1, 1, 1, 1, 0, 0]
    assert sum(len(e.connections) for e in many._http.endpoints.all) == 4
    asyncio.run(many.aclose())


# -- the loopback server itself ------------------------------------------------------


def test_the_loopback_server_reports_a_script_that_ran_out() -> None:
    with pytest.raises(AssertionError, match="script exhausted"):
        with LoopbackServer(["only one"]) as srv:
            assert run(srv).text == "only one"
            assert fail(srv, max_retries=0).retryable  # answered 500 by the loopback
