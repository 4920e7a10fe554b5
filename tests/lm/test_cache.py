"""The on-disk LM cache: keys, the SQLite store, the client and embedder wrappers, modes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Sequence

import pytest

from icldsl.language.compiler import compile_source
from icldsl.lm import Clients
from icldsl.lm.base import LMError, LMRequest, LMResponse, Message, Usage
from icldsl.lm.trace import Site
from icldsl.language.specs import LMSpec
from icldsl.lm.cache import CacheError, LMCache, cache_key, default_path
from icldsl.lm.cached import CachedClient, CachedEmbedder, CacheMiss, was_cached
from icldsl.lm.openai import OpenAIClient
from icldsl.runtime.program import Program
from icldsl.language.source import Source
from icldsl.runtime.state import spec_and_states
from tests.loopback import LoopbackServer
from tests.scripted import ScriptedLM, last_input

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "number"}}, "required": ["answer"]}


def request(question: str = "1+1", **decoding) -> LMRequest:
    decoding.setdefault("temperature", 0.0)
    return LMRequest((Message("system", "Add."), Message("user", json.dumps({"question": question}))),
                     SCHEMA, "Total", **decoding)


def adder(r: LMRequest) -> dict:
    a, b = last_input(r)["question"].split("+")
    return {"answer": int(a) + int(b)}


@pytest.fixture
def cache(tmp_path: Path):
    with LMCache(tmp_path / "lm.sqlite3") as store:
        yield store


def complete(client, *requests: LMRequest) -> list[LMResponse]:
    async def go() -> list[LMResponse]:
        return [await client.complete(r) for r in requests]
    return asyncio.run(go())


# ---- keys ------------------------------------------------------------------------


def test_the_key_covers_model_messages_schema_and_decoding_and_nothing_else() -> None:
    base = cache_key("complete", "openai/m", {"a": 1, "b": [1, 2], "c": {"x": None, "y": "é"}})
    assert base == cache_key("complete", "openai/m", {"c": {"y": "é", "x": None}, "b": (1, 2), "a": 1})
    assert len(base) == 64 and int(base, 16) >= 0
    assert base != cache_key("complete", "openai/n", {"a": 1, "b": [1, 2], "c": {"x": None, "y": "é"}})
    assert base != cache_key("embed", "openai/m", {"a": 1, "b": [1, 2], "c": {"x": None, "y": "é"}})

    client = CachedClient(ScriptedLM(adder), None)  # type: ignore[arg-type]  # key() needs no store
    keys = {client.key(r) for r in (
        request(), request("1+2"), request(max_tokens=10), request(seed=3),
        LMRequest(request().messages, None, "Total", temperature=0.0),
        LMRequest(request().messages, SCHEMA, "Other", temperature=0.0),
        LMRequest(request().messages[1:], SCHEMA, "Total", temperature=0.0),
    )}
    assert len(keys) == 7
    assert client.key(request(temperature=0)) == client.key(request(temperature=0.0))


def test_the_default_location_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICLDSL_CACHE_DIR", str(tmp_path / "c"))
    assert default_path() == tmp_path / "c" / "lm.sqlite3"
    monkeypatch.delenv("ICLDSL_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "icldsl" / "lm.sqlite3"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # ignored, as the XDG specification says
    assert default_path() == Path.home() / ".cache" / "icldsl" / "lm.sqlite3"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_path() == Path.home() / ".cache" / "icldsl" / "lm.sqlite3"


def test_keys_and_base_urls_never_reach_the_cache_and_servers_share_entries(
    server: LoopbackServer, cache: LMCache
) -> None:
    server.script = lambda r: {"answer": 2}
    secret = "sk-secret-do-not-store-123456"

    async def go() -> list[LMResponse]:
        out = []
        for url, key in ((server.openai_url, secret), (server.openai_url.replace("127.0.0.1", "localhost"), None)):
            async with OpenAIClient("m", base_url=url, api_key=key) as inner:
                out.append(await CachedClient(inner, cache).complete(request()))
        return out

    first, second = asyncio.run(go())
    assert len(server.requests) == 1 and was_cached(second) and not was_cached(first)
    assert second.text == first.text and second.usage == first.usage
    cache.close()
    stored = b"".join(p.read_bytes() for p in cache.path.parent.iterdir())
    assert secret.encode() not in stored and b"127.0.0.1" not in stored and b"localhost" not in stored


# ---- the client wrapper ------------------------------------------------------------


def test_a_repeated_request_is_answered_from_the_cache(cache: LMCache) -> None:
    lm = ScriptedLM(adder)
    first, second = complete(CachedClient(lm, cache), request(), request())
    assert len(lm.requests) == 1
    assert (first.text, second.text) == ('{"answer": 2}', '{"answer": 2}')
    assert not was_cached(first) and was_cached(second)
    assert second.usage == Usage(10, 5)  # what the original call cost
    again = complete(CachedClient(ScriptedLM(adder), cache), request())  # another client, as in a re-run
    assert was_cached(again[0])


def test_a_failed_call_is_never_cached(cache: LMCache) -> None:
    answers = iter([LMError("server down", retryable=True), {"answer": 2}])
    lm = ScriptedLM(lambda r: next(answers))
    client = CachedClient(lm, cache)
    with pytest.raises(LMError, match="server down"):
        complete(client, request())
    assert cache.stats().entries == 0
    assert json.loads(complete(client, request())[0].text) == {"answer": 2}
    assert len(lm.requests) == 2 and cache.stats().entries == 1


def test_offline_answers_hits_and_refuses_misses_without_calling(cache: LMCache) -> None:
    complete(CachedClient(ScriptedLM(adder), cache), request("1+1"))
    lm = ScriptedLM(adder)
    offline = CachedClient(lm, cache, "offline")
    assert json.loads(complete(offline, request("1+1"))[0].text) == {"answer": 2}
    with pytest.raises(CacheMiss, match="offline") as info:
        complete(offline, request("2+2"))
    assert isinstance(info.value, LMError)  # the runtime counts it as a failed prediction
    assert lm.requests == []


def test_mode_off_neither_reads_nor_writes(cache: LMCache) -> None:
    complete(CachedClient(ScriptedLM(adder), cache), request())
    lm = ScriptedLM(adder)
    responses = complete(CachedClient(lm, cache, "off"), request(), request("3+4"))
    assert len(lm.requests) == 2 and not any(map(was_cached, responses))
    assert cache.stats().entries == 1
    with pytest.raises(ValueError, match="cache mode"):
        CachedClient(lm, cache, "sometimes")  # type: ignore[arg-type]


def test_sampled_requests_keep_distinct_samples_and_replay_them_in_order(cache: LMCache) -> None:
    counter = iter(range(100))
    sampling = lambda r: {"answer": next(counter)}  # noqa: E731  # a new sample every call
    lm = ScriptedLM(sampling)
    texts = [r.text for r in complete(CachedClient(lm, cache), *[request(temperature=0.7)] * 3)]
    assert texts == ['{"answer": 0}', '{"answer": 1}', '{"answer": 2}'] and len(lm.requests) == 3
    rerun = ScriptedLM(sampling)
    replay = complete(CachedClient(rerun, cache), *[request(temperature=0.7)] * 4)
    assert [r.text for r in replay[:3]] == texts and all(map(was_cached, replay[:3]))
    assert not was_cached(replay[3]) and len(rerun.requests) == 1
    # Without a temperature the provider samples too.
    assert CachedClient(lm, cache).key(request(temperature=None)) != CachedClient(lm, cache).key(
        request(temperature=None, seed=1))


def test_identical_requests_in_flight_make_one_call(cache: LMCache) -> None:
    lm = ScriptedLM(adder, delay=lambda r: 0.05)
    client = CachedClient(lm, cache)

    async def go() -> list[LMResponse]:
        return await asyncio.gather(*(client.complete(request()) for _ in range(5)))

    responses = asyncio.run(go())
    assert len(lm.requests) == 1
    assert {r.text for r in responses} == {'{"answer": 2}'}
    assert sum(map(was_cached, responses)) == 4


def test_a_waiter_makes_its_own_call_when_the_first_one_fails(cache: LMCache) -> None:
    answers = iter([LMError("flaky"), {"answer": 2}])
    lm = ScriptedLM(lambda r: next(answers), delay=lambda r: 0.02)
    client = CachedClient(lm, cache)

    async def go() -> list:
        return await asyncio.gather(client.complete(request()), client.complete(request()), return_exceptions=True)

    first, second = asyncio.run(go())
    assert isinstance(first, LMError) and json.loads(second.text) == {"answer": 2}
    assert len(lm.requests) == 2


# ---- the store ------------------------------------------------------------------


def test_the_store_keeps_the_first_answer_counts_and_clears_by_model(cache: LMCache) -> None:
    assert cache.put("k1", "complete", "openai/a", "first")
    assert cache.put("k1", "complete", "openai/a", "second")
    assert cache.get("k1") == "first" and cache.get("nope") is None
    cache.put("k2", "complete", "openai/a", "x")
    cache.put("k3", "embed", "ollama/e", "[0.5]")
    cache.count("openai/a", hits=3, misses=2)
    stats = cache.stats()
    assert stats.entries == 3 and stats.size > 0
    assert [(m.model, m.entries, m.hits, m.misses) for m in stats.models] == [
        ("ollama/e", 1, 0, 0), ("openai/a", 2, 3, 2)]
    assert stats.models[1].bytes == len("k1first") + len("k2x")
    assert cache.clear("openai/a") == 2
    assert [m.model for m in cache.stats().models] == ["ollama/e"]
    assert cache.clear() == 1 and cache.stats().entries == 0


def test_counts_and_entries_survive_closing(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "lm.sqlite3"
    with LMCache(path) as store:
        complete(CachedClient(ScriptedLM(adder), store), request(), request(), request("2+2"))
    with LMCache(path) as store:
        stats = store.stats()
        assert stats.entries == 2
        assert [(m.model, m.hits, m.misses) for m in stats.models] == [("scripted/test", 1, 2)]
    with pytest.raises(CacheError, match="closed"):
        store.put("k", "complete", "m", "v")


def test_the_file_is_in_wal_mode(cache: LMCache) -> None:
    with sqlite3.connect(cache.path) as db:
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    db.close()
    assert mode == "wal"


def test_a_file_that_is_not_a_cache_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "lm.sqlite3"
    path.write_bytes(b"this is not a database, just some text that is long enough" * 20)
    with pytest.raises(CacheError, match="unusable.*delete the file"):
        LMCache(path)


def test_the_file_is_the_users_alone_and_an_old_open_one_is_closed(tmp_path: Path) -> None:
    with LMCache(tmp_path / "new" / "lm.sqlite3") as store:
        complete(CachedClient(ScriptedLM(adder), store), request())
        modes = {f.name: f.stat().st_mode & 0o777 for f in store.path.parent.iterdir()}
    assert modes == {"lm.sqlite3": 0o600, "lm.sqlite3-wal": 0o600, "lm.sqlite3-shm": 0o600}
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700
    old = tmp_path / "old.sqlite3"
    LMCache(old).close()
    old.chmod(0o644)  # as versions before this one left it
    LMCache(old).close()
    assert old.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_folder_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    with pytest.raises(CacheError, match=rf"folder {shared} is writable by other users .*chmod go-w"):
        LMCache(shared / "lm.sqlite3")
    assert not (shared / "lm.sqlite3").exists()


def test_a_planted_link_or_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.sqlite3"
    (tmp_path / "lm.sqlite3").symlink_to(elsewhere)
    with pytest.raises(CacheError, match="is a symbolic link"):
        LMCache(tmp_path / "lm.sqlite3")
    assert not elsewhere.exists()
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(CacheError, match="cannot be opened|not a regular file"):
        LMCache(tmp_path / "dir.sqlite3")


def test_a_folder_or_file_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "lm.sqlite3").touch()
    if os.getuid() == 0:  # root may give them away
        other = 65534
        os.chown(theirs, other, -1)
        os.chown(mine / "lm.sqlite3", other, -1)
    else:  # else they are "someone else's" by the uid icldsl compares with
        other = os.getuid()
        monkeypatch.setattr(os, "getuid", lambda: other + 1)
        mine = theirs
    with pytest.raises(CacheError, match=rf"folder {theirs} belongs to another user \(uid {other}\)"):
        LMCache(theirs / "lm.sqlite3")
    if mine is not theirs:
        with pytest.raises(CacheError, match=rf"file {mine}/lm.sqlite3 belongs to another user"):
            LMCache(mine / "lm.sqlite3")


@pytest.mark.parametrize("value", ["not json", "[1, 2]", '{"text": 5}', '{"answer": 2}',
                                   '{"text": "x", "prompt_tokens": "10", "completion_tokens": 5}', "null"])
def test_a_damaged_or_foreign_row_is_a_miss_logged_once_and_replaced(
        cache: LMCache, value: str, caplog: pytest.LogCaptureFixture) -> None:
    client = CachedClient(ScriptedLM(adder), cache)
    keys = [client.key(request(q)) for q in ("1+1", "2+2")]
    for key in keys:
        cache.put(key, "complete", "scripted/test", value)
    lm = ScriptedLM(adder)
    with caplog.at_level("WARNING", logger="icldsl.lm.cache"):
        answers = complete(CachedClient(lm, cache), request("1+1"), request("2+2"))
    assert [json.loads(a.text) for a in answers] == [{"answer": 2}, {"answer": 4}]
    assert len(lm.requests) == 2 and cache.unreadable == 2
    assert [r.message for r in caplog.records] == [caplog.records[0].message]
    assert "cannot be read" in caplog.records[0].message and "counts as a miss" in caplog.records[0].message
    again = complete(CachedClient(ScriptedLM(adder), cache), request("1+1"), request("2+2"))
    assert all(map(was_cached, again))  # the fresh answers took the bad rows' places


def test_a_damaged_vector_is_a_miss(cache: LMCache) -> None:
    inner = Embedder()
    embedder = CachedEmbedder(inner, cache)
    cache.put(embedder.key("a"), "embed", inner.name, '{"not": "a vector"}')
    assert asyncio.run(embedder.embed(["a"])) == [[1.0, 0.1]]
    assert inner.calls == [["a"]] and cache.unreadable == 1


def test_a_full_disk_is_one_warning_per_cache(cache: LMCache, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    class Full:
        def execute(self, *args):
            raise sqlite3.OperationalError("database or disk is full")

        executemany = execute

    monkeypatch.setattr(cache, "_conn", lambda: Full())
    lm = ScriptedLM(adder)
    with caplog.at_level("WARNING", logger="icldsl.lm.cache"):
        complete(CachedClient(lm, cache), *(request(f"{i}+1") for i in range(50)))
    assert len(lm.requests) == 50
    stored = [r.message for r in caplog.records if "cannot store" in r.message]
    assert len(stored) == 1 and "disk is full" in stored[0]


def test_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "lm.sqlite3"
    script = textwrap.dedent(f"""
        import sys
        from icldsl.lm.cache import LMCache
        n = int(sys.argv[1])
        with LMCache({str(path)!r}) as cache:
            for i in range(300):
                cache.put(f"shared-{{i}}", "complete", "m", f"from {{n}}")
                cache.put(f"own-{{n}}-{{i}}", "complete", "m", "x")
                assert cache.get(f"own-{{n}}-{{i}}") == "x"
                cache.count("m", hits=1)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(n)], cwd=ROOT, stderr=subprocess.PIPE, text=True)
             for n in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, errors
    with LMCache(path) as cache:
        stats = cache.stats()
        assert stats.entries == 300 + 4 * 300
        assert stats.hits == 4 * 300
        assert cache.get("shared-7") in {f"from {n}" for n in range(4)}


# ---- embeddings ------------------------------------------------------------------


class Embedder:
    name = "local/test-embedder"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [[float(len(t)), 0.1] for t in texts]

    async def aclose(self) -> None:
        pass


def test_only_new_texts_reach_the_embedder_in_order(cache: LMCache) -> None:
    inner = Embedder()
    embedder = CachedEmbedder(inner, cache)
    assert asyncio.run(embedder.embed(["a", "bb"])) == [[1.0, 0.1], [2.0, 0.1]]
    assert asyncio.run(embedder.embed(["ccc", "a", "ccc", "bb"])) == [[3.0, 0.1], [1.0, 0.1], [3.0, 0.1], [2.0, 0.1]]
    assert inner.calls == [["a", "bb"], ["ccc"]]
    with pytest.raises(CacheMiss):
        asyncio.run(CachedEmbedder(inner, cache, "offline").embed(["a", "new"]))
    other = CachedEmbedder(inner, cache, options={"dimensions": 2})  # other settings, other vectors
    asyncio.run(other.embed(["a"]))
    assert inner.calls[-1] == ["a"]


# ---- through a program -------------------------------------------------------------


SOURCE = """
model Q { question: str }
model A { answer: float }
lm solver = "openai/gpt-x" { temperature: 0.0 }
program p { input q: Q  a = generate A from q  output a }
"""


def test_a_program_caches_injected_clients_and_records_hits(cache: LMCache) -> None:
    spec, states = spec_and_states(compile_source(Source("t.icl", SOURCE)), "p")
    lm = ScriptedLM(adder)
    program = Program(spec, states, {"solver": lm}, cache=cache)

    async def go():
        return [await program.run({"question": q}) for q in ("1+1", "2+3", "1+1")]

    traces = asyncio.run(go())
    assert len(lm.requests) == 2
    records = [t.steps["p/a"] for t in traces]
    assert [(r.lm, r.calls, r.cache_hits, r.missing, len(r.latencies)) for r in records] == [
        ("solver", 1, 0, 0, 1), ("solver", 1, 0, 0, 1), ("solver", 1, 1, 0, 0)]
    assert records[2].output == {"answer": 2.0} and records[2].usage == Usage(10, 5)
    asyncio.run(program.aclose())
    assert not lm.closed  # injected clients belong to the caller


def test_a_program_offline_counts_a_missing_call_as_a_failed_step(cache: LMCache) -> None:
    spec, states = spec_and_states(compile_source(Source("t.icl", SOURCE)), "p")
    lm = ScriptedLM(adder)
    program = Program(spec, states, {"solver": lm}, cache=cache, cache_mode="offline")
    trace = asyncio.run(program.run({"question": "1+1"}))
    record = trace.steps["p/a"]
    assert trace.output is None and "not in the cache" in (record.error or "")
    assert (record.calls, record.cache_hits, record.missing, record.latencies) == (1, 0, 1, ())
    assert lm.requests == []


def test_the_meter_times_sent_calls_only(cache: LMCache) -> None:
    clients = Clients([LMSpec("solver", "scripted/x", {})], clients={"solver": ScriptedLM(adder, delay=lambda r: 0.02)},
                      cache=cache, tracers=())
    meter = clients.connect("solver").at(Site("p/a", "p"))
    complete(meter, request(), request())
    assert [(c.lm, c.cached, c.missing) for c in meter.costs] == [("solver", False, False), ("solver", True, False)]
    assert meter.costs[0].latency >= 0.02 and meter.costs[1].latency is None


def test_choices_join_the_key_and_requests_without_them_keep_theirs() -> None:
    from icldsl.lm.cached import request_payload

    plain = LMRequest((Message("user", "hi"),), temperature=0.0)
    assert "choices" not in request_payload(plain)  # keys written before choices existed still match
    one = LMRequest(plain.messages, temperature=0.0, choices=(('{"a": 1}', 0.0), ('{"a": 2}', -1.0)))
    other = LMRequest(plain.messages, temperature=0.0, choices=(('{"a": 1}', 0.0), ('{"a": 2}', -2.0)))
    keys = {cache_key("complete", "local/m", request_payload(r)) for r in (plain, one, other)}
    assert len(keys) == 3
    assert request_payload(one)["choices"] == [['{"a": 1}', 0.0], ['{"a": 2}', -1.0]]
