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
class EmbeddingSpec:
    """An embedding model's target and options, as an `embedding` block declares it."""

    name: str
    target: str
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class StepSpec:
    """An LM step. `model` is what it yields; `answer_model` is what the LM fills
    (the same, except for chain_of_thought, which adds `thinking` first)."""

    name: str
    kind: str  # generate | chain_of_thought | decide | agent
    model: str
    answer_model: str
    sources: tuple[str, ...]
    lm: str
    path: str  # stable key of the step's learned state: "<program>/<step>"
    frozen: bool = False
    tools: tuple[str, ...] = ()
    max_steps: int = 0

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "StepSpec":
        return cls(**{**data, "sources": tuple(data["sources"]), "tools": tuple(data["tools"])})


@dataclass(frozen=True, slots=True)
class ArmSpec:
    label: str | None  # None: the default arm
    step: StepSpec


@dataclass(frozen=True, slots=True)
class BranchSpec:
    """Routes on `on` = (value, field): only the arm whose label matches runs."""

    name: str
    on: tuple[str, str]
    arms: tuple[ArmSpec, ...]
    model: str
    kind: str = "branch"

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.on[0], *(s for a in self.arms for s in a.step.sources))))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "BranchSpec":
        arms = tuple(ArmSpec(a["label"], StepSpec.from_json(a["step"])) for a in data["arms"])
        return cls(data["name"], tuple(data["on"]), arms, data["model"])


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A Python callable the agent steps may call, as "module:function"."""

    name: str
    ref: str


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    name: str
    description: str | None
    input_name: str
    input_model: str
    outputs: tuple[str, ...]
    output_model: str  # the model of the single output, or the merge of several
    models: tuple[ModelSpec, ...]  # in dependency order: a model follows the models it uses
    lms: tuple[LMSpec, ...]
    tools: tuple[ToolSpec, ...]
    steps: tuple[StepSpec | BranchSpec, ...]  # in dependency order: a step follows the steps it reads

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ProgramSpec":
        return cls(
            name=data["name"],
            description=data["description"],
            input_name=data["input_name"],
            input_model=data["input_model"],
            outputs=tuple(data["outputs"]),
            output_model=data["output_model"],
            models=tuple(
                ModelSpec(m["name"], tuple(FieldSpec(**f) for f in m["fields"])) for m in data["models"]
            ),
            lms=tuple(LMSpec(**lm) for lm in data["lms"]),
            tools=tuple(ToolSpec(**t) for t in data["tools"]),
            steps=tuple(
                BranchSpec.from_json(s) if s.get("kind") == "branch" else StepSpec.from_json(s) for s in data["steps"]
            ),
        )

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def lm_steps(self) -> tuple[StepSpec, ...]:
        """Every LM step, branch arms included, in order."""
        return tuple(
            step for item in self.steps
            for step in ((a.step for a in item.arms) if isinstance(item, BranchSpec) else (item,))
        )
