"""Stand-ins shared by the tests of several packages: time and sleeps that cost no real time,
an embedder that needs no model, and an LM client that must never be called."""

from __future__ import annotations

import asyncio
import zlib
from typing import Mapping

import numpy as np

from icldsl.lm.base import LMError, LMRequest
from tests.scripted import ScriptedLM


class Sleeps:
    """An injected sleep that records the delays and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class FakeClock:
    """A clock (call it) that only moves when something sleeps on it (`sleep`, which records
    the delay and lets other tasks run), so a rate limit's minute costs no real time."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        await asyncio.sleep(0)


def bag_of_words(text: str) -> list[float]:
    """Words hashed into 64 dimensions: deterministic, and closer for texts that share words."""
    v = np.zeros(64)
    for word in text.split():
        v[zlib.crc32(word.encode()) % 64] += 1.0
    return v.tolist()


class FakeEmbedder:
    """Vectors from the table `vectors` where it has the text, else `bag_of_words`; `fail`
    makes every call raise LMError. `texts` records the texts of each call."""

    name = "fake/embedder"

    def __init__(self, vectors: Mapping[str, list[float]] | None = None, *, fail: bool = False) -> None:
        self.vectors, self.fail = dict(vectors or {}), fail
        self.texts: list[list[str]] = []

    async def embed(self, texts):
        self.texts.append(list(texts))
        if self.fail:
            raise LMError("embedding server down")
        return [self.vectors[t] if t in self.vectors else bag_of_words(t) for t in texts]

    async def aclose(self) -> None:
        pass


class Unreachable:
    """A client that must not be called: offline, the cache answers or the call is missing."""

    name = ScriptedLM.name  # the cache keys calls by the client's model name

    async def complete(self, request: LMRequest):
        raise AssertionError("an LM call reached the client in offline mode")

    async def aclose(self) -> None:
        pass
