"""The cache in front of a client: `CachedClient` and `CachedEmbedder` wrap any LM or
embedder so that every provider answers from an `LMCache` when it can.

The store (`cache.py`) owns the file, its keys and its counts; this module owns what a
call looks like to it: which parts of a request decide the answer (`request_payload`),
how an answer or a vector is stored and read back, and the modes (normal, off, offline).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .base import Embedder, LMClient, LMError, LMRequest, LMResponse, Usage
from .cache import MODES, LMCache, Mode, cache_key


class CacheMiss(LMError):
    """Offline mode met a request that is not in the cache; no call was made."""


@dataclass(frozen=True, slots=True)
class CachedResponse(LMResponse):
    """An answer replayed from the cache; `usage` is what the original call cost."""


def was_cached(response: LMResponse) -> bool:
    return isinstance(response, CachedResponse)


def request_payload(request: LMRequest) -> dict[str, Any]:
    """The parts of a chat request that decide its answer, as JSON values (`choices` only
    when given, so the keys of requests without them stay what they were)."""
    choices = {"choices": [[text, float(prior)] for text, prior in request.choices]} if request.choices else {}
    return {
        "messages": [[m.role, m.content] for m in request.messages],
        "schema": request.schema,
        "schema_name": request.schema_name,
        "temperature": None if request.temperature is None else float(request.temperature),
        "max_tokens": request.max_tokens,
        "seed": request.seed,
        **choices,
    }


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"cache mode {mode!r}; expected one of {', '.join(MODES)}")


class CachedClient:
    """An `LMClient` that answers from an `LMCache` when it can.

    `mode` "normal" reads and writes; "off" neither reads nor writes; "offline"
    reads and raises `CacheMiss` instead of calling. Identical requests in flight at
    once make one call. When `temperature` is not 0 the answers are samples: the
    n-th identical request of this client gets the n-th stored answer, so repeated
    runs still see different samples and a re-run sees the same ones.

    Wrap the outermost client of an LM: an answer its fallback gave is then stored
    under the LM's own request, and a re-run replays it without calling either.
    """

    def __init__(self, inner: LMClient, cache: LMCache, mode: Mode = "normal") -> None:
        _check_mode(mode)
        self.inner = inner
        self.cache = cache
        self.mode = mode
        self.name = inner.name
        self._samples: Counter[str] = Counter()
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    def __repr__(self) -> str:
        return f"CachedClient({self.inner!r}, {self.cache!r}, mode={self.mode!r})"

    def key(self, request: LMRequest) -> str:
        """The cache key of `request`; for a sampled request, of its next sample."""
        payload = request_payload(request)
        key = cache_key("complete", self.name, payload)
        if request.temperature == 0:
            return key
        sample = self._samples[key]
        self._samples[key] += 1
        return cache_key("complete", self.name, {**payload, "sample": sample})

    async def complete(self, request: LMRequest) -> LMResponse:
        if self.mode == "off":
            return await self.inner.complete(request)
        key = self.key(request)
        while True:
            value = self.cache.get(key)
            if value is not None:
                try:
                    response = _decode_response(value)
                except (ValueError, KeyError, TypeError) as exc:
                    self.cache.discard(key, exc)
                else:
                    self.cache.count(self.name, hits=1)
                    return response
            pending = self._in_flight.get(key)
            if pending is None:
                break
            await asyncio.wait((pending,))  # the same call is on its way: wait, then read again
        self.cache.count(self.name, misses=1)
        if self.mode == "offline":
            raise CacheMiss(f"{self.name}: offline, and this call is not in the cache ({self.cache.path})")
        done = asyncio.get_running_loop().create_future()
        self._in_flight[key] = done
        try:
            response = await self.inner.complete(request)
            self.cache.put(key, "complete", self.name, _encode_response(response))
        finally:
            del self._in_flight[key]
            done.set_result(None)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def _encode_response(response: LMResponse) -> str:
    usage = response.usage
    entry = {"text": response.text, "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens}
    if response.answered_by is not None:  # a fallback's answer replays as the fallback's
        entry["answered_by"] = response.answered_by
    return json.dumps(entry, ensure_ascii=False)


def _decode_response(value: Any) -> CachedResponse:
    """The answer stored as `value`; ValueError, KeyError or TypeError for a row that is
    not one (damaged, or written by another program)."""
    data = json.loads(value)
    text, answered_by = data["text"], data.get("answered_by")
    tokens = data["prompt_tokens"], data["completion_tokens"]
    if not isinstance(text, str) or not all(type(n) is int for n in tokens) \
            or not isinstance(answered_by, (str, type(None))):
        raise TypeError("not an answer: its text, token counts or answering lm have the wrong type")
    return CachedResponse(text, Usage(*tokens), answered_by)


def _decode_vector(value: Any) -> list[float]:
    """The vector stored as `value`; ValueError or TypeError for a row that is not one."""
    vector = json.loads(value)
    if not isinstance(vector, list) or not all(type(x) in (int, float) for x in vector):
        raise TypeError("not an embedding: not a list of numbers")
    return vector


class CachedEmbedder:
    """An `Embedder` that keeps each text's vector in an `LMCache`.

    Only texts never embedded before reach `inner`, in one call; `mode` as for
    `CachedClient`. `options` are settings of the embedder that change its vectors
    (for example a dimension count); they join the key.
    """

    def __init__(self, inner: Embedder, cache: LMCache, mode: Mode = "normal",
                 options: Mapping[str, Any] | None = None) -> None:
        _check_mode(mode)
        self.inner = inner
        self.cache = cache
        self.mode = mode
        self.name = inner.name
        self.options = dict(options or {})

    def key(self, text: str) -> str:
        return cache_key("embed", self.name, {"text": text, "options": self.options})

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if self.mode == "off":
            return await self.inner.embed(texts)
        keys = [self.key(t) for t in texts]
        vectors: dict[str, list[float]] = {}
        for key in dict.fromkeys(keys):
            value = self.cache.get(key)
            if value is not None:
                try:
                    vectors[key] = _decode_vector(value)
                except (ValueError, TypeError) as exc:
                    self.cache.discard(key, exc)
        todo = {key: text for key, text in zip(keys, texts) if key not in vectors}
        self.cache.count(self.name, hits=len(keys) - len(todo), misses=len(todo))
        if todo and self.mode == "offline":
            raise CacheMiss(f"{self.name}: offline, and {len(todo)} text(s) are not in the cache ({self.cache.path})")
        if todo:
            fresh = await self.inner.embed(list(todo.values()))
            if len(fresh) != len(todo):
                raise LMError(f"{self.name}: asked for {len(todo)} embeddings, got {len(fresh)}")
            for key, vector in zip(todo, fresh):
                vectors[key] = list(vector)
                self.cache.put(key, "embed", self.name, json.dumps(vectors[key]))
        return [vectors[key] for key in keys]

    async def aclose(self) -> None:
        await self.inner.aclose()
