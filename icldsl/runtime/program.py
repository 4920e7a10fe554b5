"""The runnable program: an async graph of LM steps built from a ProgramSpec."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from ..lm import LMClient, make_client
from .generate import StepFailure, generate, resolve_options
from .models import build_models, dump
from .spec import LMSpec, ProgramSpec, StepSpec
from .state import StepRecord, StepState, Trace

log = logging.getLogger("icldsl.runtime")


class PredictionError(Exception):
    """A program call that produced no valid output (the LM failed or its answer
    did not validate). Training counts these as reward 0."""


class InvalidInput(ValueError):
    """The input does not match the program's input model."""


class Program:
    """A compiled program with its learned state.

    `states` maps each LM step's path to its instructions and examples; training
    swaps them with `with_states`. LM clients are created on first use from the
    spec unless given in `clients` (lm name -> client), as tests do.
    """

    def __init__(
        self,
        spec: ProgramSpec,
        states: Mapping[str, StepState],
        clients: Mapping[str, LMClient] | None = None,
    ) -> None:
        self.spec = spec
        self.states = dict(states)
        self.models: dict[str, type[BaseModel]] = build_models(spec.models)
        self.input_model = self.models[spec.input_model]
        self.output_model = self.models[spec.output_model]
        self._clients: dict[str, LMClient] = dict(clients or {})
        self._owned: set[str] = set()
        self._lms = {lm.name: lm for lm in spec.lms}
        self._runner: asyncio.Runner | None = None

    def with_states(self, states: Mapping[str, StepState]) -> "Program":
        """The same program (sharing its LM clients) with other learned state."""
        other = Program.__new__(Program)
        other.__dict__.update(self.__dict__)
        other.states = dict(states)
        return other

    # ---- running ---------------------------------------------------------------

    async def run(self, x: Mapping[str, Any] | BaseModel) -> Trace:
        """Run once. LM and validation failures are recorded in the trace, not raised."""
        inputs = dump(x) if isinstance(x, BaseModel) else self.validate_input(x)
        trace = Trace()
        values: dict[str, asyncio.Future] = {}
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        ready.set_result(inputs)
        values[self.spec.input_name] = ready
        for step in self.spec.steps:
            values[step.name] = asyncio.ensure_future(self._run_step(step, [values[s] for s in step.sources], trace))
        try:
            trace.output = await values[self.spec.output]
            if trace.output is None:
                trace.error = next((r.error for r in trace.steps.values() if r.error), "no output")
            await asyncio.gather(*(values[s.name] for s in self.spec.steps))
        finally:
            for future in values.values():
                future.cancel()
        return trace

    def validate_input(self, x: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return dump(self.input_model.model_validate(x))
        except ValidationError as exc:
            raise InvalidInput(f"input does not match `{self.spec.input_model}`: {exc}") from None

    async def _run_step(self, step: StepSpec, sources: list[asyncio.Future], trace: Trace) -> dict | None:
        parts = [await s for s in sources]
        merged: dict[str, Any] = {}
        for part in parts:
            merged.update(part or {})
        if any(p is None for p in parts):
            trace.steps[step.path] = StepRecord(merged, None, "an earlier step failed")
            return None
        try:
            output, usage = await generate(
                self.models[step.model], step.model, self.states[step.path], merged,
                self._lms[step.lm], self.client(step.lm),
            )
        except StepFailure as failure:
            log.info("step %s failed: %s", step.path, failure)
            trace.steps[step.path] = StepRecord(merged, None, str(failure), failure.usage)
            return None
        trace.steps[step.path] = StepRecord(merged, output, None, usage)
        return output

    def client(self, lm_name: str) -> LMClient:
        if lm_name not in self._clients:
            lm: LMSpec = self._lms[lm_name]
            self._clients[lm_name] = make_client(lm.target, resolve_options(lm.options))
            self._owned.add(lm_name)
        return self._clients[lm_name]

    # ---- calling it like a function ------------------------------------------

    async def acall(self, **inputs: Any) -> BaseModel:
        """The validated output for one input; raises PredictionError on failure."""
        trace = await self.run(inputs)
        if trace.output is None:
            raise PredictionError(trace.error or "no output")
        return self.output_model.model_validate(trace.output)

    async def abatch(self, inputs: list[Mapping[str, Any]]) -> list[BaseModel | None]:
        """Outputs for many inputs, run concurrently; None where a prediction failed."""
        traces = await asyncio.gather(*(self.run(x) for x in inputs))
        return [None if t.output is None else self.output_model.model_validate(t.output) for t in traces]

    def __call__(self, **inputs: Any) -> BaseModel:
        """Synchronous `acall`, on an event loop this program keeps between calls."""
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self.acall(**inputs))

    async def aclose(self) -> None:
        for name in self._owned:
            await self._clients.pop(name).aclose()
        self._owned.clear()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.run(self.aclose())
            self._runner.close()
            self._runner = None
