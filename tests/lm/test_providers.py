"""Ollama, Anthropic and vLLM clients against a real loopback HTTP server, and the
reliability every HTTP provider shares (icldsl.lm.http)."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any

import pytest

from icldsl.language.catalogue.lms import PROVIDERS
from icldsl.lm import make_client
from icldsl.lm.anthropic import AnthropicClient
from icldsl.lm.base import LMConfigError, LMError, LMRequest, LMResponse, Message, Usage
from icldsl.lm.http import RateLimiter
from icldsl.lm.ollama import OllamaClient
from icldsl.lm.openai import OpenAIClient, VLLMClient
from tests.fakes import FakeClock, Sleeps
from tests.loopback import LoopbackServer, Reply, error_reply

KEY = "sk-ant-test-0123456789abcdef"
SCHEMA = {"type": "object", "properties": {"answer": {"type": "number"}}, "required": ["answer"]}
REQUEST = LMRequest(
    messages=(
        Message("system", "Add."),
        Message("user", '{"q": "1+1"}'),
        Message("assistant", '{"answer": 2}'),
        Message("user", '{"q": "2+2"}'),
    ),
    schema=SCHEMA,
    schema_name="Sum Answer",
    temperature=0.3,
    max_tokens=64,
    seed=5,
)
PLAIN = LMRequest(messages=(Message("user", "hi"),))

CLIENTS = {"openai": OpenAIClient, "vllm": VLLMClient, "ollama": OllamaClient, "anthropic": AnthropicClient}
URLS = {"openai": "openai_url", "vllm": "openai_url", "ollama": "ollama_url", "anthropic": "anthropic_url"}
PATHS = {"openai": "/v1/chat/completions", "vllm": "/v1/chat/completions", "ollama": "/api/chat",
         "anthropic": "/v1/messages"}


def client(provider: str, server: LoopbackServer, **options: Any):
    options.setdefault("backoff_base", 0.001)
    return CLIENTS[provider]("m", base_url=getattr(server, URLS[provider]), **options)


def run(provider: str, server: LoopbackServer, request: LMRequest = PLAIN, **options: Any) -> LMResponse:
    async def go() -> LMResponse:
        async with client(provider, server, **options) as c:
            return await c.complete(request)

    return asyncio.run(go())


def fail(provider: str, server: LoopbackServer, request: LMRequest = PLAIN, **options: Any) -> LMError:
    with pytest.raises(LMError) as info:
        run(provider, server, request, **options)
    return info.value


@pytest.mark.parametrize("provider", sorted(CLIENTS))
def test_a_request_with_choices_is_refused_before_anything_is_sent(provider: str, server: LoopbackServer) -> None:
    """Only the local provider can score choices (`Provider.scores`); `check` refuses such programs."""
    assert not PROVIDERS[provider].scores and PROVIDERS["local"].scores
    error = fail(provider, server, LMRequest(PLAIN.messages, choices=(('{"a": 1}', 0.0),)))
    assert "this provider cannot score choices (only the local provider can)" in str(error)
    assert server.requests == []


# -- wire formats ------------------------------------------------------------------


def test_ollama_sends_native_chat_with_the_schema_as_format(server: LoopbackServer) -> None:
    server.push('{"answer": 4}')
    response = run("ollama", server, REQUEST, num_ctx=8192)
    assert response.text == '{"answer": 4}'
    assert response.usage == Usage(prompt_tokens=7, completion_tokens=2)  # loopback counts words
    [sent] = server.requests
    assert sent.path == "/api/chat" and "authorization" not in sent.headers
    assert sent.json == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Add."},
            {"role": "user", "content": '{"q": "1+1"}'},
            {"role": "assistant", "content": '{"answer": 2}'},
            {"role": "user", "content": '{"q": "2+2"}'},
        ],
        "stream": False,
        "format": SCHEMA,
        "options": {"temperature": 0.3, "num_predict": 64, "seed": 5, "num_ctx": 8192},
    }


def test_ollama_without_schema_or_options_sends_neither(server: LoopbackServer) -> None:
    server.push("hello")
    assert run("ollama", server).text == "hello"
    assert set(server.requests[0].json) == {"model", "messages", "stream"}


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        (None, "http://127.0.0.1:11434"),
        ("0.0.0.0:11500", "http://127.0.0.1:11500"),
        ("http://gpu-box:11434/", "http://gpu-box:11434"),
    ],
)
def test_ollama_finds_its_server_from_ollama_host(
    monkeypatch: pytest.MonkeyPatch, host: str | None, expected: str
) -> None:
    if host is not None:
        monkeypatch.setenv("OLLAMA_HOST", host)
    assert OllamaClient("m").base_url == expected


def test_anthropic_forces_a_tool_whose_input_is_the_answer(server: LoopbackServer) -> None:
    server.push({"answer": 4})
    response = run("anthropic", server, REQUEST, api_key=KEY)
    assert response.text == '{"answer": 4}'
    assert response.usage == Usage(prompt_tokens=7, completion_tokens=2)
    [sent] = server.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == KEY and sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json == {
        "model": "m",
        "max_tokens": 64,
        "system": "Add.",
        "temperature": 0.3,  # no seed: the API has none
        "messages": [
            {"role": "user", "content": '{"q": "1+1"}'},
            {"role": "assistant", "content": '{"answer": 2}'},
            {"role": "user", "content": '{"q": "2+2"}'},
        ],
        "tools": [{"name": "Sum_Answer", "description": "Give the answer as this tool's input.",
                   "input_schema": SCHEMA}],
        "tool_choice": {"type": "tool", "name": "Sum_Answer"},
    }


def test_anthropic_joins_consecutive_turns_and_reads_text_blocks(server: LoopbackServer) -> None:
    server.push("plain text answer")
    request = LMRequest(messages=(Message("user", "a"), Message("user", "b"), Message("assistant", "c"),
                                  Message("user", "d")))
    assert run("anthropic", server, request).text == "plain text answer"
    sent = server.requests[0].json
    assert sent["messages"] == [{"role": "user", "content": "a\n\nb"}, {"role": "assistant", "content": "c"},
                                {"role": "user", "content": "d"}]
    assert sent["max_tokens"] == 1024 and "tools" not in sent and "system" not in sent


def test_anthropic_needs_a_key_only_at_its_own_host(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(LMConfigError, match="ANTHROPIC_API_KEY"):
        AnthropicClient("claude-x")
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    assert AnthropicClient("claude-x").base_url == "https://api.anthropic.com"
    assert AnthropicClient("claude-x", base_url="http://127.0.0.1:9").name == "anthropic/claude-x"


def test_vllm_is_the_openai_client_with_vllm_defaults(
    server: LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert VLLMClient("qwen").base_url == "http://127.0.0.1:8000/v1"  # no key needed, none required
    monkeypatch.setenv("VLLM_BASE_URL", server.openai_url)
    monkeypatch.setenv("VLLM_API_KEY", "vllm-secret")
    server.push("ok")

    async def go() -> str:
        async with make_client("vllm/qwen", {"temperature": 0.0, "fallback": "other"}) as c:
            assert c.name == "vllm/qwen"
            return (await c.complete(PLAIN)).text

    assert asyncio.run(go()) == "ok"
    assert server.requests[0].headers["authorization"] == "Bearer vllm-secret"
    assert server.requests[0].json["model"] == "qwen"


@pytest.mark.parametrize("provider", ["vllm", "ollama", "anthropic"])
def test_options_are_constructor_keywords_with_the_declared_defaults(provider: str) -> None:
    params = inspect.signature(CLIENTS[provider]).parameters
    declared = PROVIDERS[provider].signature.options
    for name in ("timeout", "max_retries", "max_concurrency", "rpm", "total_timeout", "fallback", "temperature"):
        assert name in declared
    for name in declared:
        if name in ("temperature", "max_tokens", "seed", "fallback"):
            assert name not in params  # travel in requests, or act in the runtime
            continue
        assert params[name].kind is inspect.Parameter.KEYWORD_ONLY
        assert params[name].default is None, name  # the default is the declaration's, not a second one
    limits = CLIENTS[provider]("m", base_url="http://127.0.0.1:9")._http.limits
    defaults = PROVIDERS[provider].client_options.defaults
    assert (limits.timeout, limits.max_retries, limits.max_concurrency) == \
        (defaults["timeout"], defaults["max_retries"], defaults["max_concurrency"])


# -- reliability, the same for every provider ------------------------------------------


@pytest.mark.parametrize("provider", list(CLIENTS))
def test_transient_failures_are_retried_with_backoff_then_answered(provider: str, server: LoopbackServer) -> None:
    server.push(
        error_reply(500, "boom"),
        Reply(drop=True),
        error_reply(429, "slow down", {"Retry-After": "2"}),
        Reply(status=529, body={"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}),
        "finally",
    )
    sleeps = Sleeps()
    assert run(provider, server, max_retries=4, backoff_base=0.1, sleep=sleeps).text == "finally"
    assert len(server.requests) == 5 and {r.path for r in server.requests} == {PATHS[provider]}
    first, second, retry_after, fourth = sleeps.delays
    assert 0.1 <= first <= 0.2 and 0.2 <= second <= 0.3 and retry_after == 2.0 and 0.8 <= fourth <= 0.9


@pytest.mark.parametrize("provider", list(CLIENTS))
def test_a_slow_server_times_out_and_exhausted_retries_say_so(provider: str, server: LoopbackServer) -> None:
    server.push(Reply(delay=5.0), Reply(delay=5.0))
    error = fail(provider, server, timeout=0.2, max_retries=1)
    assert error.retryable and "2 attempt" in str(error) and "timed out" in str(error)


@pytest.mark.parametrize(
    ("provider", "status", "fix"),
    [
        ("openai", 401, "no API key was sent; set OPENAI_API_KEY"),
        ("vllm", 403, "no API key was sent; set VLLM_API_KEY"),
        ("anthropic", 401, "check ANTHROPIC_API_KEY or the api_key option"),
        ("ollama", 401, "this provider sends no key; check base_url"),
        ("ollama", 404, "check the model name 'm'"),
        ("anthropic", 400, "check the lm options (max_tokens, temperature)"),
        ("openai", 413, "use fewer or shorter examples"),
    ],
)
def test_errors_the_user_must_fix_fail_at_once_saying_what_to_fix(
    provider: str, status: int, fix: str, server: LoopbackServer, caplog: pytest.LogCaptureFixture
) -> None:
    key = KEY if provider == "anthropic" else None
    server.push(error_reply(status, f"refused; your key is {KEY}"))
    caplog.set_level(logging.DEBUG)
    error = fail(provider, server, **({"api_key": key} if key else {}))
    assert not error.retryable and len(server.requests) == 1
    assert fix in str(error) and f"HTTP {status}" in str(error) and "refused; your key is" in str(error)
    if key:
        assert KEY not in str(error) and KEY not in caplog.text and "<api key>" in str(error)


def test_ollama_error_bodies_are_read(server: LoopbackServer) -> None:
    server.push(Reply(status=404, body={"error": "model 'm' not found, try pulling it first"}))
    assert "try pulling it first" in str(fail("ollama", server))


@pytest.mark.parametrize("provider", list(CLIENTS))
def test_concurrent_requests_are_bounded_per_lm(provider: str, server: LoopbackServer) -> None:
    server.script = lambda request: Reply(delay=0.2, body=server_answer(provider, request))

    async def go() -> None:
        async with client(provider, server, max_concurrency=2) as c:
            await asyncio.gather(*(c.complete(PLAIN) for _ in range(6)))

    asyncio.run(go())
    assert len(server.requests) == 6 and server.max_in_flight == 2


def server_answer(provider: str, request: Any) -> Any:
    from tests.loopback import FORMATS

    return FORMATS[PATHS[provider]]("ok", request).body


def test_the_rate_limiter_allows_rpm_starts_in_any_minute() -> None:
    clock = FakeClock(1000.0)
    limiter = RateLimiter(3, clock=clock, sleep=clock.sleep)
    starts: list[float] = []

    async def go() -> None:
        for _ in range(7):
            await limiter.acquire()
            starts.append(clock.now - 1000.0)
            clock.now += 1.0  # each request takes a second

    asyncio.run(go())
    assert starts == [0, 1, 2, 60, 61, 62, 120]


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_rpm_paces_a_clients_requests(provider: str, server: LoopbackServer) -> None:
    clock = FakeClock(1000.0)
    server.push(*["ok"] * 5)

    async def go() -> None:
        async with client(provider, server, rpm=2, clock=clock, sleep=clock.sleep) as c:
            await asyncio.gather(*(c.complete(PLAIN) for _ in range(5)))

    asyncio.run(go())
    assert len(server.requests) == 5
    assert clock.sleeps == [60.0, 60.0]  # requests 3-4 wait one window, request 5 another


def test_total_timeout_bounds_a_call_across_its_retries(server: LoopbackServer) -> None:
    server.script = lambda request: Reply(delay=0.3, status=503)
    start = time.monotonic()
    error = fail("ollama", server, timeout=5.0, max_retries=50, total_timeout=1.0, backoff_base=0.05)
    elapsed = time.monotonic() - start
    assert error.retryable and "total_timeout" in str(error)
    assert 0.9 <= elapsed < 2.0
    assert 2 <= len(server.requests) <= 5


def test_total_timeout_cuts_a_single_slow_attempt(server: LoopbackServer) -> None:
    server.push(Reply(delay=5.0))
    start = time.monotonic()
    error = fail("anthropic", server, timeout=30.0, total_timeout=0.3)
    assert "total_timeout of 0.3 s reached" in str(error) and time.monotonic() - start < 2.0


def test_a_retry_after_beyond_total_timeout_gives_up_at_once(server: LoopbackServer) -> None:
    server.push(error_reply(429, "later", {"Retry-After": "30"}))
    sleeps = Sleeps()
    error = fail("openai", server, total_timeout=5.0, sleep=sleeps)
    assert "would pass total_timeout" in str(error) and sleeps.delays == [] and len(server.requests) == 1


@pytest.mark.parametrize(
    "options", [{"rpm": 0}, {"total_timeout": 0.0}, {"max_concurrency": 0}, {"base_url": "127.0.0.1:11434"}]
)
def test_impossible_settings_are_config_errors(options: dict[str, Any]) -> None:
    options.setdefault("base_url", "http://127.0.0.1:9")
    with pytest.raises(LMConfigError):
        AnthropicClient("m", **options)


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body={"message": {"role": "assistant"}}),
        Reply(body={"content": "not blocks"}),
        Reply(body="<html>gateway</html>"),
    ],
)
def test_an_unexpected_body_is_a_non_retryable_error(server: LoopbackServer, reply: Reply) -> None:
    server.push(reply)
    provider = "ollama" if "message" in str(reply.body) else "anthropic"
    error = fail(provider, server)
    assert not error.retryable and len(server.requests) == 1
