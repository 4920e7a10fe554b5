"""What a program learns (per-step state) and what a run leaves behind (traces)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..lm.base import Usage
from .demo import Demo
from .retrieval import Retrieval

__all__ = ["Demo", "StepRecord", "StepState", "Trace"]


@dataclass(frozen=True, slots=True)
class StepState:
    """The trainable variables of one LM step: its instructions, its fixed examples, and
    the examples it retrieves for each input (see `retrieval`), which follow the fixed ones."""

    instructions: str
    examples: tuple[Demo, ...] = ()
    frozen: bool = False
    retrieval: Retrieval | None = None

    def with_examples(self, examples: tuple[Demo, ...]) -> "StepState":
        return dataclasses.replace(self, examples=examples)

    def with_retrieval(self, retrieval: Retrieval | None) -> "StepState":
        return dataclasses.replace(self, retrieval=retrieval)

    def to_json(self) -> dict[str, Any]:
        doc = {
            "instructions": self.instructions,
            "examples": [d.to_json() for d in self.examples],
            "frozen": self.frozen,
        }
        if self.retrieval is not None:  # absent rather than null, so states without one keep their bytes
            doc["retrieval"] = self.retrieval.to_json()
        return doc

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StepState":
        retrieval = Retrieval.from_json(data["retrieval"]) if data.get("retrieval") is not None else None
        return cls(data["instructions"], tuple(Demo.from_json(d) for d in data["examples"]), bool(data["frozen"]),
                   retrieval)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What one step saw and produced in one run; `output` is None when it failed.

    `calls` counts the LM requests the step made through its LM `lm`, answered from
    the cache or not; `cache_hits` those the cache answered; `missing` those refused
    offline for not being cached; `latencies` the seconds of each request that
    reached the LM.
    """

    inputs: Mapping[str, Any]
    output: Mapping[str, Any] | None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    lm: str | None = None
    calls: int = 0
    cache_hits: int = 0
    missing: int = 0
    latencies: tuple[float, ...] = ()
    retrieved: tuple[str, ...] = ()  # origins of the examples retrieved for this input, in prompt order


@dataclass(slots=True)
class Trace:
    """One run of a program: every step's record (by path) and the final output."""

    steps: dict[str, StepRecord] = field(default_factory=dict)
    output: Mapping[str, Any] | None = None
    error: str | None = None
