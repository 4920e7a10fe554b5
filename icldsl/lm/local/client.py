"""`LocalClient`: the provider's LMClient, which starts an engine on its first call."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading

from ...language.catalogue.lms import PROVIDERS
from ..base import LMConfigError, LMError, LMRequest, LMResponse
from ..providers import declared_options
from .engine import Engine
from .models import FILE_WEIGHTS, INSTALL_HINT, MODELS, requantized, resolve_model

log = logging.getLogger(__name__)


class LocalClient:
    """`LMClient` for a GGUF model run in this process by llama.cpp.

    The model loads on the first call, in a worker thread. Up to `n_parallel`
    calls decode together, each with a context window of `n_ctx` tokens; more
    wait their turn. A request without a seed uses the client's, so the same
    request gives the same answer. With `weights` other than "file", the model
    runs requantized (see `requantized`) under the name `<name>@<weights>`, so
    that cached answers of the two never mix. The options' defaults and ranges are their
    declarations' (`icldsl.language.catalogue.lms`).
    """

    def __init__(
        self,
        model: str,
        *,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        n_parallel: int | None = None,
        seed: int = 0,
        weights: str | None = None,
    ) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LMConfigError(f"the local provider needs llama-cpp-python; run: {INSTALL_HINT}")
        options = declared_options("local", PROVIDERS["local"].client_options, {
            "n_ctx": n_ctx, "n_threads": n_threads, "n_parallel": n_parallel, "weights": weights})
        n_ctx, n_threads, n_parallel = options["n_ctx"], options.get("n_threads"), options["n_parallel"]
        weights = options["weights"]
        self.name = f"local/{model}" if model in MODELS else f"local:{model}"
        if weights != FILE_WEIGHTS:
            self.name += f"@{weights}"
        self.path = resolve_model(model)
        self.weights = weights
        self.n_ctx, self.n_threads, self.n_parallel, self.seed = n_ctx, n_threads, n_parallel, seed
        self._engine: Engine | None = None
        self._starting = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalClient({self.name!r}, n_parallel={self.n_parallel})"

    async def complete(self, request: LMRequest) -> LMResponse:
        engine = self._engine or await asyncio.to_thread(self._start)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[LMResponse] = loop.create_future()

        def deliver(outcome: LMResponse | LMError) -> None:
            try:
                loop.call_soon_threadsafe(_settle, answer, outcome)
            except RuntimeError:  # the caller's loop is gone; nobody waits
                log.debug("%s: answer for a closed event loop dropped", self.name)

        job = engine.job(request, self.seed if request.seed is None else request.seed, deliver)
        engine.submit(job)
        try:
            return await answer
        except asyncio.CancelledError:
            job.cancelled = True
            raise

    async def aclose(self) -> None:
        """Finish calls in flight and free the model; a later call loads it again."""
        engine, self._engine = self._engine, None
        if engine is not None:
            await asyncio.to_thread(engine.close)

    def _start(self) -> Engine:
        with self._starting:
            if self._engine is None:
                path = self.path if self.weights == FILE_WEIGHTS else requantized(self.path, self.weights)
                self._engine = Engine(self.name, path, n_ctx=self.n_ctx, n_threads=self.n_threads,
                                       n_parallel=self.n_parallel)
            return self._engine


def _settle(future: asyncio.Future[LMResponse], outcome: LMResponse | LMError) -> None:
    if future.done():  # cancelled meanwhile
        return
    if isinstance(outcome, LMError):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
