"""The compiled, JSON-serialisable description of a program: what the artifact
stores and what the runtime builds from. Types are JSON values:
`"str" | "int" | "float" | "bool" | {"list": T} | {"optional": T} | {"enum": [..]} | {"model": name}`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    type: Any
    description: str | None


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    fields: tuple[FieldSpec, ...]


@dataclass(frozen=True, slots=True)
class LMSpec:
    """An LM's target and options; secrets appear only as `{"env": NAME}`."""

    name: str
    target: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    kind: str
    model: str
    sources: tuple[str, ...]
    lm: str
    path: str  # stable key of the step's learned state: "<program>/<step>"


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    name: str
    description: str | None
    input_name: str
    input_model: str
    output: str
    models: tuple[ModelSpec, ...]  # in dependency order: a model follows the models it uses
    lms: tuple[LMSpec, ...]
    steps: tuple[StepSpec, ...]  # in source order: a step follows the steps it reads

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ProgramSpec":
        return cls(
            name=data["name"],
            description=data["description"],
            input_name=data["input_name"],
            input_model=data["input_model"],
            output=data["output"],
            models=tuple(
                ModelSpec(m["name"], tuple(FieldSpec(**f) for f in m["fields"])) for m in data["models"]
            ),
            lms=tuple(LMSpec(**lm) for lm in data["lms"]),
            steps=tuple(StepSpec(**{**s, "sources": tuple(s["sources"])}) for s in data["steps"]),
        )

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    @property
    def output_model(self) -> str:
        """The name of the model the program outputs."""
        if self.output == self.input_name:
            return self.input_model
        return next(s.model for s in self.steps if s.name == self.output)
