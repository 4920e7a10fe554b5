"""The LMs and embedding models that rewards and optimizers use (an LM judge, an
LM that rewrites instructions), through the session's cache, with their usage kept
apart from the program's own."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel

from ..lm import connect_embedder, make_client
from ..lm.base import Embedder, LMClient
from ..lm.cache import CachedClient, CallMeter, LMCache, Mode
from ..runtime.generate import StepFailure, generate, resolve_options
from ..specs import EmbeddingSpec, LMSpec
from ..runtime.state import StepRecord, StepState


class BoundLM:
    """An `lm` block a reward or optimizer asks for structured answers.

    `purpose` names who uses it (`reward lm_judge`, `optimizer omega`); each call's
    usage is recorded under it in `records`.
    """

    def __init__(self, spec: LMSpec, client: LMClient, purpose: str, records: list[tuple[str, StepRecord]]):
        self.spec, self.client, self.purpose, self._records = spec, client, purpose, records
        self.name = spec.name

    async def ask(self, model: type[BaseModel], instructions: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """The LM's answer to `inputs`, validated into `model`; StepFailure when it gives none."""
        meter = CallMeter(self.client)
        state = StepState(instructions)
        try:
            answer, usage = await generate(model, model.__name__, state, inputs, self.spec, meter)
        except StepFailure as failure:
            self._record(inputs, None, str(failure), failure.usage, meter)
            raise
        self._record(inputs, answer, None, usage, meter)
        return answer

    def _record(self, inputs, output, error, usage, meter: CallMeter) -> None:
        self._records.append((self.purpose, StepRecord(
            dict(inputs), output, error, usage, self.spec.name, meter.calls, meter.cache_hits, meter.missing,
            tuple(meter.latencies))))


@dataclass
class Resources:
    """Every `lm` and `embedding` of a file, created on first use and closed by `aclose`,
    and the folders a user's reward or optimizer module is imported from.

    `records` holds (purpose, StepRecord) for each structured call made through
    `lm(...)`; the trainer counts them in the fit's usage and budget.
    """

    lms: Mapping[str, LMSpec] = field(default_factory=dict)
    embeddings: Mapping[str, EmbeddingSpec] = field(default_factory=dict)
    cache: LMCache | None = None
    cache_mode: Mode = "normal"
    clients: dict[str, LMClient] = field(default_factory=dict)  # given clients (tests) are not closed
    search_path: tuple[Path, ...] = ()  # where a user's Python modules may live (the .icl file's folder)
    records: list[tuple[str, StepRecord]] = field(default_factory=list)
    _owned: dict[str, Any] = field(default_factory=dict)
    _embedders: dict[str, Embedder] = field(default_factory=dict)

    def lm(self, name: str, purpose: str) -> BoundLM:
        spec = self.lms[name]
        if name not in self.clients:
            self.clients[name] = self._owned[f"lm {name}"] = make_client(spec.target, resolve_options(spec.options))
        client = self.clients[name]
        if self.cache is not None:
            client = CachedClient(client, self.cache, self.cache_mode)
        return BoundLM(spec, client, purpose, self.records)

    def embedder(self, name: str) -> Embedder:
        if name not in self._embedders:
            spec = self.embeddings[name]
            self._embedders[name] = self._owned[f"embedding {name}"] = connect_embedder(
                spec.target, resolve_options(spec.options), self.cache, self.cache_mode)
        return self._embedders[name]

    async def aclose(self) -> None:
        for owned in self._owned.values():
            await owned.aclose()
        self._owned.clear()
        self._embedders.clear()

