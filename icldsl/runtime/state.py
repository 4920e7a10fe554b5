"""What a program learns (per-step state) and what a run leaves behind (traces)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..lm.base import Usage


@dataclass(frozen=True, slots=True)
class Demo:
    """A few-shot example of one step: its input, its output, the reward the whole
    run earned, and the dataset row it came from."""

    inputs: Mapping[str, Any]
    output: Mapping[str, Any]
    reward: float
    origin: str

    def to_json(self) -> dict[str, Any]:
        return {"inputs": dict(self.inputs), "output": dict(self.output), "reward": self.reward, "origin": self.origin}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Demo":
        return cls(data["inputs"], data["output"], float(data["reward"]), data["origin"])


@dataclass(frozen=True, slots=True)
class StepState:
    """The trainable variables of one LM step."""

    instructions: str
    examples: tuple[Demo, ...] = ()
    frozen: bool = False

    def with_examples(self, examples: tuple[Demo, ...]) -> "StepState":
        return dataclasses.replace(self, examples=examples)

    def to_json(self) -> dict[str, Any]:
        return {
            "instructions": self.instructions,
            "examples": [d.to_json() for d in self.examples],
            "frozen": self.frozen,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StepState":
        return cls(data["instructions"], tuple(Demo.from_json(d) for d in data["examples"]), bool(data["frozen"]))


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


@dataclass(slots=True)
class Trace:
    """One run of a program: every step's record (by path) and the final output."""

    steps: dict[str, StepRecord] = field(default_factory=dict)
    output: Mapping[str, Any] | None = None
    error: str | None = None
