"""A few-shot example of one step, as the runtime shows it to an LM and the artifact keeps it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


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
