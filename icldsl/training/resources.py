"""The LMs and embedding models that rewards and optimizers use (an LM judge, an
LM that rewrites instructions), through the session's cache, with their usage kept
apart from the program's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from pydantic import BaseModel

from ..lm import Clients, Connection
from ..lm.base import Embedder, LMClient
from ..lm.cache import LMCache, Mode
from ..lm.trace import Site, Tracer
from ..runtime.generate import StepFailure, generate
from ..runtime.models import json_schema
from ..runtime.request import StepRequest, request
from ..runtime.state import StepRecord, StepState
from ..language.specs import EmbeddingSpec, LMSpec


class BoundLM:
    """An `lm` block a reward or optimizer asks for structured answers.

    `purpose` names who uses it (`reward lm_judge`, `optimizer omega`); each call's
    usage is recorded under it in `records`.
    """

    def __init__(self, spec: LMSpec, connection: Connection, purpose: str,
                 records: list[tuple[str, StepRecord]]) -> None:
        self.spec, self.connection, self.purpose, self._records = spec, connection, purpose, records
        self.name = spec.name

    async def ask(self, model: type[BaseModel], instructions: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The LM's answer to `inputs`, validated into `model`; StepFailure when it gives none."""
        meter = self.connection.at(Site(self.purpose))
        first = StepRequest(request(StepState(instructions), json_schema(model), model.__name__, inputs, self.spec),
                            model, model.__name__)
        try:
            answer, usage = await generate(first, meter)
        except StepFailure as failure:
            self._records.append((self.purpose, StepRecord(dict(inputs), None, str(failure), failure.usage,
                                                           self.spec.name, meter.costs)))
            raise
        finally:
            meter.close()
        self._records.append((self.purpose, StepRecord(dict(inputs), answer, None, usage, self.spec.name,
                                                       meter.costs)))
        return answer


@dataclass
class Resources:
    """Every `lm` and `embedding` of a file, connected on first use (`lm.Clients`) and
    closed by `aclose`, and the folders a user's reward or optimizer module is imported from.

    With `connections` (the program's clients, as a fit and an evaluation give them), an
    lm or embedding the program uses too is the program's own client, not a second one:
    one rate limit, one concurrency limit and one loaded model per name. Their owner, the
    program, closes them. `records` holds (purpose, StepRecord) for each structured call
    made through `lm(...)`; the trainer counts them in the fit's usage and budget.
    """

    lms: Mapping[str, LMSpec] = field(default_factory=dict)
    embeddings: Mapping[str, EmbeddingSpec] = field(default_factory=dict)
    cache: LMCache | None = None
    cache_mode: Mode = "normal"
    clients: Mapping[str, LMClient] = field(default_factory=dict)  # given clients (tests) are not closed
    search_path: tuple[Path, ...] = ()  # where a user's Python modules may live (the .icl file's folder)
    records: list[tuple[str, StepRecord]] = field(default_factory=list)
    tracers: Sequence[Tracer] | None = None  # None: OpenTelemetry's spans, when it is installed
    connections: Clients | None = None  # the program's clients, shared (the program closes them)
    _connected: Clients | None = None

    @property
    def connected(self) -> Clients:
        if self._connected is None:
            if self.connections is not None:
                self._connected = self.connections.include(self.lms.values())
            else:
                self._connected = Clients(self.lms.values(), clients=self.clients, cache=self.cache,
                                          cache_mode=self.cache_mode, tracers=self.tracers)
        return self._connected

    def lm(self, name: str, purpose: str) -> BoundLM:
        return BoundLM(self.lms[name], self.connected.connect(name), purpose, self.records)

    def embedder(self, name: str) -> Embedder:
        return self.connected.embedder(self.embeddings[name])

    async def aclose(self) -> None:
        """Close the clients made here (shared `connections` stay open for their owner)."""
        if self._connected is not None and self.connections is None:
            await self._connected.aclose()
