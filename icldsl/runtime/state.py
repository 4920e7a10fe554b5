"""What a program learns (per-step state) and what a run leaves behind (traces)."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Mapping

from annotated_types import Ge
from typing_extensions import NotRequired, TypedDict  # pydantic reads typing.TypedDict only from 3.12

from ..language.specs import Compiled, EmbeddingSpec, ProgramSpec
from ..lm.base import Usage
from ..lm.trace import CallCost
from .demo import Demo
from .retrieval import Dense, Retrieval

if TYPE_CHECKING:
    from pydantic import TypeAdapter

__all__ = ["Demo", "StepRecord", "StepState", "StepStateJSON", "Trace", "spec_and_states"]


class StepStateJSON(TypedDict):
    """A step state as an artifact or a checkpoint keeps it: what `StepState.to_json` writes
    and `StepState.from_json` checks before it reads. The one description of that form; a
    retrieval's own form is its reader's (`Retrieval.from_json`)."""

    instructions: str
    examples: list[Demo]
    frozen: bool
    retrieval: NotRequired[dict[str, Any] | None]
    bounds: NotRequired[dict[str, Annotated[int, Ge(1)]]]


@functools.cache
def _json_form() -> TypeAdapter[StepStateJSON]:
    """Built on first use: pydantic costs `icldsl check`, which reads no state, a tenth of its time."""
    from pydantic import TypeAdapter

    return TypeAdapter(StepStateJSON)


@dataclass(frozen=True, slots=True)
class StepState:
    """The trainable variables of one LM step: its instructions, its fixed examples, the
    examples it retrieves for each input (see `retrieval`), which follow the fixed ones, and
    the length bounds a fit took from the data for its answer's free strings (`bounds`:
    (field, characters) pairs, see runtime/bounds.py)."""

    instructions: str
    examples: tuple[Demo, ...] = ()
    frozen: bool = False
    retrieval: Retrieval | None = None
    bounds: tuple[tuple[str, int], ...] = ()

    @property
    def embedding(self) -> EmbeddingSpec | None:
        """The embedding model its retrieval sends inputs to (a dense index's), if any."""
        index = self.retrieval.pool.index if self.retrieval is not None else None
        return index.embedding if isinstance(index, Dense) else None

    def with_examples(self, examples: tuple[Demo, ...]) -> "StepState":
        return dataclasses.replace(self, examples=examples)

    def with_retrieval(self, retrieval: Retrieval | None) -> "StepState":
        return dataclasses.replace(self, retrieval=retrieval)

    def with_bounds(self, bounds: tuple[tuple[str, int], ...]) -> "StepState":
        return dataclasses.replace(self, bounds=tuple(bounds))

    def to_json(self) -> dict[str, Any]:
        """Its JSON form, as `StepStateJSON` describes it (examples and retrieval in their own forms)."""
        doc = {
            "instructions": self.instructions,
            "examples": [d.to_json() for d in self.examples],
            "frozen": self.frozen,
        }
        if self.retrieval is not None:  # absent rather than null, so states without one keep their bytes
            doc["retrieval"] = self.retrieval.to_json()
        if self.bounds:  # likewise
            doc["bounds"] = dict(self.bounds)
        return doc

    @classmethod
    def from_json(cls, data: Any) -> "StepState":
        """The state of its JSON form (`to_json`'s). Each part's type is checked against
        `StepStateJSON` first: pydantic's ValidationError (a ValueError) names the first part
        that is wrong. A retrieval's own form is judged by `Retrieval.from_json`, which raises
        KeyError, TypeError, ValueError or IndexError."""
        _json_form().validate_python(data)
        retrieval = Retrieval.from_json(data["retrieval"]) if data.get("retrieval") is not None else None
        bounds = tuple((str(k), int(v)) for k, v in (data.get("bounds") or {}).items())
        return cls(data["instructions"], tuple(Demo.from_json(d) for d in data["examples"]), bool(data["frozen"]),
                   retrieval, bounds)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What one step saw and produced in one run; `output` is None when it failed.

    `lm` is the LM the step asks; `lm_calls` what each of its requests cost, under the
    LM that answered it (the step's, or a fallback), answered from the cache or not.
    """

    inputs: Mapping[str, Any]
    output: Mapping[str, Any] | None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    lm: str | None = None
    lm_calls: tuple[CallCost, ...] = ()
    retrieved: tuple[str, ...] = ()  # origins of the examples retrieved for this input, in prompt order
    cascaded: bool = False  # answered by the vote of its retrieved examples (cascade), without an LM call

    @property
    def calls(self) -> int:
        """LM requests the step made, answered from the cache or not."""
        return len(self.lm_calls)

    @property
    def cache_hits(self) -> int:
        return sum(c.cached for c in self.lm_calls)

    @property
    def missing(self) -> int:
        """Requests refused offline for not being cached."""
        return sum(c.missing for c in self.lm_calls)

    @property
    def latencies(self) -> tuple[float, ...]:
        """Seconds of each request that reached an LM."""
        return tuple(c.latency for c in self.lm_calls if c.latency is not None)


@dataclass(slots=True)
class Trace:
    """One run of a program: every step's record (by path) and the final output."""

    steps: dict[str, StepRecord] = field(default_factory=dict)
    output: Mapping[str, Any] | None = None
    error: str | None = None


def spec_and_states(compiled: Compiled, name: str) -> tuple[ProgramSpec, dict[str, StepState]]:
    """Program `name` of a compiled file as it starts, untrained: its spec and each LM step's
    state, holding the instructions the compiler gave it (the file's, or its kind's default)."""
    spec, instructions = compiled.programs[name]
    return spec, {step.path: StepState(instructions[step.path], frozen=step.frozen) for step in spec.lm_steps()}
