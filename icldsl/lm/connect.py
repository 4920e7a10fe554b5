"""From an `lm` block's name to the client that answers its calls: the one way, for
programs, rewards and optimizers alike.

`Clients.connect(name)` resolves the block's options (`env(...)` read now), builds
its provider's client (or takes one given, as tests do), puts its `fallback:` chain
behind it, the cache in front of that (so a fallback's answer is stored under the LM's
own request and replayed without calling either), and returns a `Connection` whose
`at(site)` meters the calls of one site (a step's run, a judge's question) and hands
each to the tracers (`lm.trace`). Embedding models connect here too.
"""

from __future__ import annotations

import os
import time
from typing import Any, Iterable, Mapping, Sequence

from ..language.catalogue.lms import DECODING_OPTIONS
from ..language.specs import EmbeddingSpec, LMSpec
from .base import Embedder, LMClient, LMError, LMRequest, LMResponse
from .cache import LMCache, Mode
from .cached import CachedClient, CachedEmbedder, CacheMiss, was_cached
from .fallback import FallbackClient
from .providers import make_client, make_embedder
from .trace import Call, CallCost, Site, Tracer, current, finish, otel_tracer


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """LM options with `{"env": NAME}` replaced by the variable's value (dropped if unset),
    also inside a list (`base_url: [env("A"), env("B")]`)."""

    def is_env(value: Any) -> bool:
        return isinstance(value, dict) and set(value) == {"env"}

    resolved = {}
    for key, value in options.items():
        if isinstance(value, list):
            value = [os.environ.get(v["env"]) if is_env(v) else v for v in value]
            value = [v for v in value if v is not None]
        elif is_env(value):
            value = os.environ.get(value["env"])
            if value is None:
                continue
        resolved[key] = value
    return resolved


def decoding_options(lm: LMSpec) -> dict[str, Any]:
    """The options of an LM that travel with each request (temperature, max_tokens, seed)."""
    return {k: v for k, v in resolve_options(lm.options).items() if k in DECODING_OPTIONS}


# Embedding options that change the vectors, so they join an embedding's cache key.
VECTOR_OPTIONS = ("dimensions",)


def connect_embedder(target: str, options: Mapping[str, Any], cache: LMCache | None = None,
                     mode: Mode = "normal") -> Embedder:
    """`make_embedder`, answering through `cache` when one is given; closing it closes the model."""
    inner = make_embedder(target, options)
    if cache is None:
        return inner
    return CachedEmbedder(inner, cache, mode, {k: v for k, v in options.items() if k in VECTOR_OPTIONS})


def default_tracers() -> tuple[Tracer, ...]:
    """OpenTelemetry spans when its API is installed (a no-op unless a provider is set up)."""
    otel = otel_tracer()
    return (otel,) if otel is not None else ()


class Connection:
    """An lm block's client with its fallbacks and cache; `at(site)` gives the metered
    client one site calls through. `name` is the target (`openai/gpt-4.1-mini`), `lm` the block's name."""

    def __init__(self, lm: str, client: LMClient, tracers: Sequence[Tracer]) -> None:
        self.lm, self.client, self.tracers = lm, client, tracers
        self.name = client.name

    def at(self, site: Site) -> Meter:
        return Meter(self, site)


class Meter:
    """The calls one site makes through a connection, as an `LMClient`.

    Each call becomes a `Call`; `costs` are what they cost, each under the LM that
    answered it (so a fallback's answers count under the fallback). A call reaches the
    tracers once the runtime has said what it read from the answer (`read`), or at
    once when it failed; `close` hands over any answer nobody read.
    """

    def __init__(self, connection: Connection, site: Site) -> None:
        self.connection, self.site = connection, site
        self.name = connection.name
        self.calls: list[Call] = []
        self._unread: Call | None = None

    async def complete(self, request: LMRequest) -> LMResponse:
        self.close()
        connection = self.connection
        call = Call(self.site, connection.lm, connection.name, request)
        self.calls.append(call)
        token = current(call)
        started = time.perf_counter()
        try:
            response = await connection.client.complete(request)
        except CacheMiss as exc:
            call.missing, call.error = True, str(exc)
            self._trace(call)
            raise
        except LMError as exc:
            call.latency, call.error = time.perf_counter() - started, str(exc)
            self._trace(call)
            raise
        finally:
            finish(token)
            call.ended = time.time()
        call.text, call.usage = response.text, response.usage
        call.answered_by = response.answered_by or connection.lm
        if was_cached(response):
            call.cached = True
        else:
            call.latency = time.perf_counter() - started
        self._unread = call
        return response

    def read(self, output: Mapping[str, Any] | None = None, refused: str | None = None) -> None:
        """What the runtime read from the last answer: the output, or why it refused it."""
        call, self._unread = self._unread, None
        if call is not None:
            call.output, call.refused = output, refused
            self._trace(call)

    def close(self) -> None:
        self.read()

    @property
    def costs(self) -> tuple[CallCost, ...]:
        return tuple(call.cost for call in self.calls)

    def _trace(self, call: Call) -> None:
        for tracer in self.connection.tracers:
            tracer.record(call)

    async def aclose(self) -> None:
        """Nothing: the connections own the client."""


class Clients:
    """The clients of a set of lm blocks and of embedding models, each made on first use
    and closed by `aclose`: one per name, so a program and the rewards and optimizers
    training it share them (one rate limit, one concurrency limit, one local model).

    `clients` (lm name -> client) stand in for the provider's clients, as tests do; the
    caller keeps them (they are not closed). `concurrency` is how many calls the caller
    keeps in flight (`Program.map`): an HTTP LM whose options do not set
    `max_concurrency` made after it is set allows that many. `tracers` receive every
    call; by default, OpenTelemetry's spans when it is installed.
    """

    def __init__(self, lms: Iterable[LMSpec], *, clients: Mapping[str, LMClient] | None = None,
                 cache: LMCache | None = None, cache_mode: Mode = "normal",
                 tracers: Sequence[Tracer] | None = None, concurrency: int | None = None) -> None:
        self.lms = {lm.name: lm for lm in lms}
        self.cache, self.cache_mode = cache, cache_mode
        self.tracers = default_tracers() if tracers is None else tuple(tracers)
        self.concurrency = concurrency
        self._given = dict(clients or {})
        self._made: dict[str, LMClient] = {}
        self._chains: dict[str, LMClient] = {}
        self._connections: dict[str, Connection] = {}
        self._embedders: dict[str, Embedder] = {}

    def include(self, lms: Iterable[LMSpec]) -> "Clients":
        """Know the lm blocks `lms` too, for a reward or optimizer that shares these clients
        (a name known already keeps its block, so each lm name has one client); returns self."""
        for lm in lms:
            self.lms.setdefault(lm.name, lm)
        return self

    def client(self, name: str) -> LMClient:
        """The provider's client of lm `name` (given, or made from its options)."""
        if name not in self._given and name not in self._made:
            lm = self.lms[name]
            self._made[name] = make_client(lm.target, resolve_options(lm.options), concurrency=self.concurrency)
        return self._given.get(name) or self._made[name]

    def _chain(self, name: str) -> LMClient:
        """The client of lm `name` followed by its fallback's chain (the checker ruled out cycles)."""
        if name not in self._chains:
            fallback = self.lms[name].options.get("fallback")
            client = self.client(name)
            if fallback in self.lms:
                client = FallbackClient(client, self._chain(fallback), fallback)
            self._chains[name] = client
        return self._chains[name]

    def connect(self, name: str) -> Connection:
        """The connection of lm `name`: its chain of fallbacks behind the cache, metered and traced."""
        if name not in self._connections:
            client = self._chain(name)
            if self.cache is not None:
                client = CachedClient(client, self.cache, self.cache_mode)
            self._connections[name] = Connection(name, client, self.tracers)
        return self._connections[name]

    def prepare(self, names: Iterable[str]) -> None:
        """Connect the lms `names` (with their fallbacks) now, and have each client made here
        that can (`prepare()`, an HTTP client) make ready for its calls in flight, so that
        work comes before the first call rather than in it."""
        for name in names:
            self.connect(name)
        for client in self._made.values():
            prepare = getattr(client, "prepare", None)
            if prepare is not None:
                prepare()

    def embedder(self, spec: EmbeddingSpec) -> Embedder:
        """The embedding model `spec` names, through the cache."""
        if spec.name not in self._embedders:
            self._embedders[spec.name] = connect_embedder(spec.target, resolve_options(spec.options), self.cache,
                                                          self.cache_mode)
        return self._embedders[spec.name]

    async def aclose(self) -> None:
        """Close the clients and embedding models made here; a later use makes them again."""
        for embedder in self._embedders.values():
            await embedder.aclose()
        for client in self._made.values():
            await client.aclose()
        self._embedders.clear()
        self._made.clear()
        self._chains.clear()
        self._connections.clear()
