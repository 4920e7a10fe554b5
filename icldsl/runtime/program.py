"""The runnable program: an async graph of LM steps built from a ProgramSpec."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from pydantic import BaseModel, ValidationError

from ..datasets.rows import summarize
from ..errors import Error
from ..language.options import MAX_CONCURRENCY
from ..lm import Clients, LMClient, LMError
from ..lm.cache import LMCache, Mode
from ..lm.trace import Site, Tracer
from ..language.specs import BranchSpec, EmbeddingSpec, ProgramSpec, StepSpec
from .agent import run_agent
from .demo import Demo
from .generate import StepFailure, generate
from .models import build_models, dump
from .request import StepRequest, step_request
from .state import StepRecord, StepState, Trace
from .tools import Tool, load_tools

log = logging.getLogger("icldsl.runtime")

VECTORS_KEPT = 4096  # input vectors a program remembers, so candidates compared on the same inputs embed them once


class PredictionError(Error):
    """A program call that produced no valid output (the LM failed or its answer
    did not validate). Training counts these as reward 0."""


class InvalidInput(Error, ValueError):
    """The input does not match the program's input model."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """What one input of `Program.map` or `abatch` became: `index` is its position among
    the inputs (from 0); `output` the output's fields as JSON values, or `error` why
    there is none (an input that does not match the input model, a failed LM call, an
    answer that did not validate)."""

    index: int
    output: dict[str, Any] | None
    error: str | None = None


_END = object()  # `map`'s inputs are used up


class Program:
    """A compiled program with its learned state.

    `states` maps each LM step's path to its instructions and examples; training
    swaps them with `with_states`. LM clients are connected on first use from the
    spec (`lm.Clients`) unless given in `clients` (lm name -> client), as tests do.
    With a `cache`, every LM answers through it in `cache_mode`; `tracers` receive
    every call (by default OpenTelemetry's spans, when it is installed).
    """

    def __init__(
        self,
        spec: ProgramSpec,
        states: Mapping[str, StepState],
        clients: Mapping[str, LMClient] | None = None,
        search_path: tuple[Path, ...] = (),
        *,
        cache: LMCache | None = None,
        cache_mode: Mode = "normal",
        barred: tuple[Path, ...] = (),
        tracers: Sequence[Tracer] | None = None,
    ) -> None:
        self.spec = spec
        self.search_path = search_path  # where tools' modules may live besides sys.path
        self.barred = barred  # folders tools' modules may never come from (an artifact's own)
        self.states = dict(states)
        self.models: dict[str, type[BaseModel]] = build_models(spec.models)
        self.input_model = self.models[spec.input_model]
        self.output_model = self.models[spec.output_model]
        self.clients = Clients(spec.lms, clients=clients, cache=cache, cache_mode=cache_mode, tracers=tracers)
        self.cache, self.cache_mode = cache, cache_mode
        self._lms = {lm.name: lm for lm in spec.lms}
        self._runner: asyncio.Runner | None = None
        self._tools: dict[str, Tool] | None = None
        self._fields = {name: tuple(m.model_fields[f].alias or f for f in m.model_fields)
                        for name, m in self.models.items()}
        self._vectors: dict[tuple[str, str], np.ndarray | asyncio.Future] = {}  # inputs' vectors, oldest first

    def with_states(self, states: Mapping[str, StepState]) -> "Program":
        """The same program (sharing its LM clients) with other learned state."""
        other = Program.__new__(Program)
        other.__dict__.update(self.__dict__)
        other.states = dict(states)
        return other

    def reseeded(self, offset: int) -> "Program":
        """The same program whose LM requests carry the seed `seed + offset` (an unset seed
        counts as 0): at a temperature above 0, another sample of every answer."""
        other = self.with_states(self.states)
        other._lms = {name: dataclasses.replace(lm, options={**lm.options, "seed": lm.options.get("seed", 0) + offset})
                      for name, lm in self._lms.items()}
        return other

    # ---- running ---------------------------------------------------------------

    async def run(self, x: Mapping[str, Any] | BaseModel) -> Trace:
        """Run once. LM and validation failures are recorded in the trace, not raised.

        Every step starts as soon as the values it reads are ready, so
        independent steps run concurrently.
        """
        inputs = dump(x) if isinstance(x, BaseModel) else self.validate_input(x)
        trace = Trace()
        ready = asyncio.get_running_loop().create_future()
        ready.set_result(inputs)
        values: dict[str, asyncio.Future] = {self.spec.input_name: ready}
        *others, last = self.spec.steps  # in dependency order
        for item in others:
            values[item.name] = asyncio.ensure_future(self._run_item(item, values, trace))
        try:
            # The last step runs in this task: a task fewer per call, none for one step.
            values[last.name] = asyncio.get_running_loop().create_future()
            values[last.name].set_result(await self._run_item(last, values, trace))
            parts = [await values[name] for name in self.spec.outputs]
            if all(p is not None for p in parts):
                trace.output = {k: v for part in parts for k, v in part.items()}
            else:
                trace.error = next((r.error for r in trace.steps.values() if r.error), "no output")
            for item in self.spec.steps:  # every step ends (or fails) before the trace is done
                await values[item.name]
        finally:
            for future in values.values():
                future.cancel()
        return trace

    def validate_input(self, x: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return dump(self.input_model.model_validate(x))
        except ValidationError as exc:
            raise InvalidInput(f"input does not match `{self.spec.input_model}`: {summarize(exc)}") from None

    async def _run_item(self, item: StepSpec | BranchSpec, values: Mapping[str, asyncio.Future],
                        trace: Trace) -> dict | None:
        if isinstance(item, StepSpec):
            return await self._run_step(item, values, trace)
        routed = await values[item.on[0]]
        if routed is None:
            return None
        value = routed.get(item.on[1])
        arm = item.arm(value)
        if arm is None:
            path = f"{self.spec.name}/{item.name}"
            trace.steps[path] = StepRecord({item.on[1]: value}, None,
                                           f"no arm of `{item.name}` for {item.label(value)!r}")
            return None
        return await self._run_step(arm.step, values, trace)

    async def _run_step(self, step: StepSpec, values: Mapping[str, asyncio.Future], trace: Trace) -> dict | None:
        parts = [await values[s] for s in step.sources]
        merged: dict[str, Any] = {}
        for part in parts:
            merged.update(part or {})
        if any(p is None for p in parts):
            trace.steps[step.path] = StepRecord(merged, None, "an earlier step failed")
            return None
        try:
            retrieved = await self.retrieve(step, merged)
        except LMError as exc:  # the embedding model failed: this run of the step fails
            trace.steps[step.path] = StepRecord(merged, None, f"retrieving examples failed: {exc}", lm=step.lm)
            return None
        origins = tuple(d.origin for d in retrieved)
        retrieval = self.states[step.path].retrieval
        agreed = retrieval.agreed(retrieved) if retrieval is not None and step.kind != "agent" else None
        if agreed is not None and all(name in agreed.output for name in self._fields[step.answer_model]):
            answer = dict(agreed.output)  # enough retrieved examples vote for it: no LM call (cascade)
            trace.steps[step.path] = StepRecord(merged, answer, None, lm=step.lm, retrieved=origins, cascaded=True)
            return {name: answer[name] for name in self._fields[step.model]}
        first = self.request(step, merged, retrieved)
        meter = self.clients.connect(step.lm).at(Site(step.path, self.spec.name))
        try:
            if step.kind == "agent":
                answer, usage = await run_agent(step, first, self.models[step.answer_model], meter, self.tools())
            else:
                answer, usage = await generate(first, meter)
        except StepFailure as failure:
            log.info("step %s failed: %s", step.path, failure)
            trace.steps[step.path] = StepRecord(merged, None, str(failure), failure.usage, step.lm, meter.costs,
                                                origins)
            return None
        finally:
            meter.close()
        trace.steps[step.path] = StepRecord(merged, answer, None, usage, step.lm, meter.costs, origins)
        # chain_of_thought's answer carries `thinking`; the step yields its model's fields.
        return {name: answer[name] for name in self._fields[step.model]}

    async def step_request(self, step: StepSpec, inputs: Mapping[str, Any],
                           tools: Mapping[str, Tool] | None = None) -> tuple[StepRequest, tuple[Demo, ...]]:
        """The first request `step` sends for `inputs` with its current state, and the examples
        it retrieved for them (LMError when the embedding model fails). `tools` describe the
        program's tools to an agent step (by default, the imported tools)."""
        retrieved = await self.retrieve(step, inputs)
        return self.request(step, inputs, retrieved, tools), retrieved

    async def retrieve(self, step: StepSpec, inputs: Mapping[str, Any]) -> tuple[Demo, ...]:
        """The examples `step` retrieves for `inputs` (none without retrieval; LMError when the
        embedding model fails). A run asks this first: the cascade may answer without a request."""
        retrieval = self.states[step.path].retrieval
        return () if retrieval is None else await retrieval.select(inputs, self.embed)

    def request(self, step: StepSpec, inputs: Mapping[str, Any], retrieved: tuple[Demo, ...],
                tools: Mapping[str, Tool] | None = None) -> StepRequest:
        """The first request `step` sends for `inputs`, shown its own examples and `retrieved`."""
        state = self.states[step.path]
        if retrieved:
            state = state.with_examples(state.examples + retrieved)
        tools = (self.tools() if tools is None else tools) if step.kind == "agent" else {}
        return step_request(step, state, inputs, self.models[step.answer_model], self._lms[step.lm], tools,
                            retrieved)

    def tools(self) -> dict[str, Tool]:
        """The program's tools, imported on first use (ToolError if one cannot be)."""
        if self._tools is None:
            self._tools = load_tools(self.spec.tools, self.search_path, barred=self.barred)
        return self._tools

    async def embed(self, spec: EmbeddingSpec, text: str) -> np.ndarray:
        """`text`'s vector from the embedding model `spec`, computed once per program and text
        (concurrent steps asking for the same one share the call)."""
        key = (spec.name, text)
        known = self._vectors.get(key)
        if isinstance(known, np.ndarray):
            return known
        if known is None:
            known = self._vectors[key] = asyncio.ensure_future(self.clients.embedder(spec).embed([text]))
            if len(self._vectors) > VECTORS_KEPT:
                del self._vectors[next(iter(self._vectors))]
        try:
            (vector,) = await asyncio.shield(known)
        except LMError:
            self._vectors.pop(key, None)  # not kept: the next call tries again
            raise
        self._vectors[key] = array = np.asarray(vector, dtype=np.float32)
        return array

    # ---- calling it like a function ------------------------------------------

    async def acall(self, **inputs: Any) -> BaseModel:
        """The validated output for one input; raises PredictionError on failure."""
        trace = await self.run(inputs)
        if trace.output is None:
            raise PredictionError(trace.error or "no output")
        return self.output_model.model_validate(trace.output)

    async def map(self, inputs: Iterable[Mapping[str, Any]] | AsyncIterable[Mapping[str, Any]], *,
                  concurrency: int = 8) -> AsyncIterator[Prediction]:
        """A Prediction for every input, as each finishes (`index` says which input it was).

        Inputs are taken from `inputs` as the previous ones finish, never more than
        `concurrency` at once, so a stream of any length runs in flat memory. A bad
        input or a failed prediction is reported in its Prediction; errors that no
        input could avoid (an LM's settings, a tool that cannot be imported) raise.
        An LM whose options do not set `max_concurrency` allows `concurrency` calls.
        """
        self._expect(concurrency)
        taken = 0
        if isinstance(inputs, AsyncIterable):
            source, lock = aiter(inputs), asyncio.Lock()  # an async generator takes one anext at a time

            async def take() -> tuple[int, Mapping[str, Any]] | None:
                nonlocal taken
                async with lock:
                    try:
                        x = await anext(source)
                    except StopAsyncIteration:
                        return None
                    taken += 1
                    return taken - 1, x
        else:
            rows = iter(inputs)

            async def take() -> tuple[int, Mapping[str, Any]] | None:
                nonlocal taken
                x = next(rows, _END)
                if x is _END:
                    return None
                taken += 1
                return taken - 1, x

        # Workers that each run one input at a time, like a hand-written client's loop (no task
        # per input). `room` counts inputs in flight plus predictions the caller has not read
        # yet, so a caller that reads slowly holds the workers back.
        room = asyncio.Semaphore(2 * concurrency)  # twice: a worker rarely waits for the caller
        finished: asyncio.Queue[Prediction | asyncio.Task[None]] = asyncio.Queue()

        async def work() -> None:
            while True:
                await room.acquire()
                item = await take()
                if item is None:
                    room.release()
                    return
                finished.put_nowait(await self._predict(*item))

        workers = [asyncio.create_task(work()) for _ in range(concurrency)]
        for task in workers:
            task.add_done_callback(finished.put_nowait)  # a worker's end, or the error it met
        try:
            ended = 0
            while ended < len(workers):
                item = await finished.get()
                if isinstance(item, Prediction):
                    yield item
                    room.release()
                    continue
                ended += 1
                if not item.cancelled() and item.exception() is not None:
                    raise item.exception()  # type: ignore[misc]
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    def prepare(self, concurrency: int) -> None:
        """Connect the program's LMs now, ready for `map(..., concurrency=concurrency)`: an
        HTTP LM makes the transports of its calls in flight, which `map` would otherwise
        make as its first calls start (LMConfigError for an LM that cannot connect)."""
        self._expect(concurrency)
        self.clients.prepare(step.lm for step in self.spec.lm_steps())

    def _expect(self, concurrency: int) -> None:
        """Let an LM whose options do not set `max_concurrency` allow `concurrency` calls."""
        if not 1 <= concurrency <= MAX_CONCURRENCY:
            raise ValueError(f"concurrency must be from 1 to {MAX_CONCURRENCY}, got {concurrency}")
        self.clients.concurrency = max(self.clients.concurrency or 0, concurrency)

    async def _predict(self, index: int, x: Mapping[str, Any]) -> Prediction:
        try:
            trace = await self.run(x)
        except InvalidInput as exc:
            return Prediction(index, None, str(exc))
        return Prediction(index, trace.output) if trace.output is not None else \
            Prediction(index, None, trace.error or "no output")

    async def abatch(self, inputs: Iterable[Mapping[str, Any]], *, concurrency: int = 8) -> list[Prediction]:
        """A Prediction for every input, in the inputs' order; one bad input fails alone."""
        return sorted([p async for p in self.map(inputs, concurrency=concurrency)], key=lambda p: p.index)

    def __call__(self, **inputs: Any) -> BaseModel:
        """Synchronous `acall`, on an event loop this program keeps between calls."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self.acall(**inputs))

    async def aclose(self) -> None:
        self._vectors.clear()
        await self.clients.aclose()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.run(self.aclose())
            self._runner.close()
            self._runner = None

