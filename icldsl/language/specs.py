"""Specs: what the compiler makes of a file and every later stage reads.

A program's spec is JSON-serialisable: what the artifact stores and what the runtime
builds from. Types are JSON values:
`"str" | "int" | "float" | "bool" | {"list": T} | {"optional": T} | {"enum": [..]} | {"model": name}`.
Data and train specs say what `fit` loads and how it trains; `TrainSpec` takes its settings'
defaults and ranges from their one declaration, `catalogue.training.TRAIN_SETTINGS`.

This module sits below the compiler, the runtime and training, and imports none of them.
"""

from __future__ import annotations

import functools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .catalogue.training import MODE, MONITOR, TRAIN_SETTINGS, budget_problems
from .diagnostics import Diagnostic
from .source import Source

if TYPE_CHECKING:
    from pydantic import TypeAdapter


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

    @staticmethod
    def label(value: Any) -> str:
        """A routed value as an arm's label writes it (`true`/`false` for booleans)."""
        return json.dumps(value) if isinstance(value, bool) else str(value)

    def arm(self, value: Any) -> ArmSpec | None:
        """The arm that runs when the routed field holds `value`: the one labelled with it,
        else the default arm, else none."""
        label = self.label(value)
        return next((a for a in self.arms if a.label == label), None) or \
            next((a for a in self.arms if a.label is None), None)


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
    def from_json(cls, data: Any) -> "ProgramSpec":
        """The spec of its JSON form (`to_json`'s), every part's type checked: pydantic's
        ValidationError (a ValueError) names the first part that is wrong. Whether names
        refer to what exists is `spec_check`'s to say."""
        return _program_json().validate_python(data)

    def model(self, name: str) -> ModelSpec:
        return next(m for m in self.models if m.name == name)

    def lm_steps(self) -> tuple[StepSpec, ...]:
        """Every LM step, branch arms included, in order."""
        return tuple(
            step for item in self.steps
            for step in ((a.step for a in item.arms) if isinstance(item, BranchSpec) else (item,))
        )


@functools.cache
def _program_json() -> TypeAdapter[ProgramSpec]:
    """Built on first use: pydantic and the adapter cost a tenth of `icldsl check`, which never reads an artifact."""
    from pydantic import TypeAdapter

    return TypeAdapter(ProgramSpec)


@dataclass(frozen=True, slots=True)
class DataSpec:
    name: str
    loader: str
    args: Mapping[str, Any]
    base_dir: Path


def _default(key: str) -> Any:
    return TRAIN_SETTINGS.defaults.get(key)


@dataclass(frozen=True, slots=True)
class TrainSpec:
    """A train block with every default filled in. Fields are in the order the artifact
    records them (`training.train`), so they stay in this order."""

    program: str
    data: str
    reward: tuple[str, Mapping[str, Any]]
    optimizers: tuple[tuple[str, Mapping[str, Any]], ...]  # chained, in order
    epochs: int = _default("epochs")
    batch_size: int = _default("batch_size")
    runs: int = _default("runs")
    seed: int = _default("seed")
    validation_split: float = _default("validation_split")
    concurrency: int = _default("concurrency")
    monitor: str = MONITOR  # `checkpoint best MONITOR MODE`
    mode: str = MODE
    early_stopping: int | None = _default("early_stopping")  # patience, in epochs
    budget: Mapping[str, int] | None = _default("budget")  # {"calls": n, "tokens": n}

    def __post_init__(self) -> None:
        """Refuses a setting the checker refuses (ValueError), by the same declaration."""
        TRAIN_SETTINGS.check("train", {key: getattr(self, key) for key in TRAIN_SETTINGS.options})
        for _, _, message in budget_problems(self.budget or {}):
            raise ValueError(f"train: {message}")


@dataclass(frozen=True, slots=True)
class Compiled:
    """Everything one file defines, compiled. `programs` pairs each program's spec with the
    instructions each of its LM steps starts from, by path (the runtime's states are made of
    them: `runtime.state.spec_and_states`)."""

    source: Source
    programs: Mapping[str, tuple[ProgramSpec, Mapping[str, str]]]
    data: Mapping[str, DataSpec]
    trains: tuple[TrainSpec, ...]
    lms: Mapping[str, LMSpec] = field(default_factory=dict)  # every lm of the file
    embeddings: Mapping[str, EmbeddingSpec] = field(default_factory=dict)
    warnings: tuple[Diagnostic, ...] = field(default=())
    sources: Mapping[str, Source] = field(default_factory=dict)

    @property
    def base_dir(self) -> Path:
        """The folder of the file: relative paths and tool modules are looked up there."""
        return Path(self.source.name).resolve().parent

    def train(self, name: str | None = None) -> TrainSpec:
        """The train block for program `name`, or the only (first) one."""
        for spec in self.trains:
            if name is None or spec.program == name:
                return spec
        raise KeyError(name or "no train block")
