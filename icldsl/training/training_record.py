"""The artifact's `training` section as a type: `TrainingRecord` and its parts, with the
only `to_json` (what `fit` writes) and `from_json` (what plots, report and diff read).

The JSON keeps the shape artifacts have always had, key for key and in the same order,
so artifacts written through this module are byte for byte those written before it:

- `train` (the train block's settings), `data` (`DataRecord`);
- the history of the fit (`HistoryRecord`): `history`, `initial_val_reward` and
  `initial_val_<metric>`, `best_epoch`, `epochs_run`, `stopped`, `optimizer_events`, `usage`;
- `scores`: one `ScoreRecord` per program state (`untrained`, `trained`), where each
  metric `m` is `m_mean`, `m_std` and `m_runs` (one value per run; the reward's runs
  are `rewards`), beside `examples`, `failures` (per run) and `labels` (a per-label
  table per run);
- `baselines` (what `training/baselines.py` writes, one object per step; kept as read,
  since that module owns its fields), `total_usage`, `usage_by_step`, `usage_by_lm`, and
  `trained_minus_untrained` (`Difference`) when the fit measured it.

`from_json` also reads what older artifacts hold: scores whose metrics have no `m_runs`
(before every run's metrics were kept: each is one value, its mean), a `labels` that is
one table rather than one per run, and sections left out (no metrics, no baselines, no
`trained_minus_untrained`, no `epochs_run`). It ignores nothing silently: keys it does not
know (an artifact of a later icldsl) are kept in `other`, in the record and in each score,
and written back after the known ones; a value of the wrong type is an ArtifactError that
names where it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from ..artifact import ArtifactError
from .history import History
from .usage import CallStats

if TYPE_CHECKING:
    from .estimate import Estimate

REWARD = "reward"


# ---- reading JSON, saying where it is wrong ---------------------------------------------------


def _bad(where: str, value: Any, expected: str) -> ArtifactError:
    shown = repr(value)
    return ArtifactError(f"training{'.' if where else ''}{where} is {shown[:40] + '…' if len(shown) > 40 else shown}, "
                         f"not {expected}")


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _bad(where, value, "a number")
    return value


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, value, "a whole number")
    return value


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(where, value, "text")
    return value


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _bad(where, value, "an object")
    return value


def _array(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list):
        raise _bad(where, value, "a list")
    return value


def _numbers(value: Any, where: str) -> tuple[float, ...]:
    return tuple(_number(v, f"{where}[{i}]") for i, v in enumerate(_array(value, where)))


def _stats(value: Any, where: str) -> CallStats:
    doc = _object(value, where)
    for key in (*CallStats.COUNTED, *doc):
        if key not in (*CallStats.COUNTED, "cascaded"):
            raise ArtifactError(f"training.{where} has `{key}`, which is not an LM usage count")
        _count(doc.get(key), f"{where}.{key}")
    return CallStats.from_json(doc)


def _stats_by(value: Any, where: str) -> dict[str, CallStats]:
    return {k: _stats(v, f"{where}.{k}") for k, v in _object(value, where).items()}


# ---- scores -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stat:
    """One metric of a program state over the test runs: their mean, std and each run's value."""

    mean: float
    std: float = 0.0
    runs: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """A program state scored on the test set once per run.

    `metrics` are the metrics beside the reward (accuracy, failures, calls, tokens,
    `f1_<field>`), in the order they were computed; `labels` the per-label tables, one per
    run, or None when no metrics were computed (the key is then absent)."""

    reward: Stat
    examples: int = 0
    failures: tuple[int, ...] = ()
    metrics: Mapping[str, Stat] = field(default_factory=dict)
    labels: tuple[Mapping[str, Any], ...] | None = None
    other: Mapping[str, Any] = field(default_factory=dict)  # keys this icldsl does not know, kept as read

    @property
    def stats(self) -> dict[str, Stat]:
        """The reward, then every other metric."""
        return {REWARD: self.reward, **self.metrics}

    @property
    def run_count(self) -> int:
        """How many times the test set was scored: the most runs any metric has."""
        return max(len(s.runs) for s in self.stats.values())

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "reward_mean": self.reward.mean,
            "reward_std": self.reward.std,
            "rewards": list(self.reward.runs),
            "examples": self.examples,
            "failures": list(self.failures),
        }
        for name, stat in self.metrics.items():
            doc[f"{name}_mean"], doc[f"{name}_std"], doc[f"{name}_runs"] = stat.mean, stat.std, list(stat.runs)
        if self.labels is not None:
            doc["labels"] = [dict(t) for t in self.labels]
        return {**doc, **self.other}

    @classmethod
    def from_json(cls, value: Any, where: str = "scores") -> "ScoreRecord":
        doc = _object(value, where)
        known = {"reward_mean", "reward_std", "rewards", "examples", "failures", "labels"}
        names = [k[: -len("_mean")] for k in doc if k.endswith("_mean") and k != "reward_mean"]
        stats = {}
        for name in [REWARD, *names]:
            mean = _number(doc.get(f"{name}_mean"), f"{where}.{name}_mean")
            runs_key = "rewards" if name == REWARD else f"{name}_runs"
            runs = _numbers(doc[runs_key], f"{where}.{runs_key}") if runs_key in doc else (mean,)
            stats[name] = Stat(mean, _number(doc.get(f"{name}_std", 0.0), f"{where}.{name}_std"), runs)
            known |= {f"{name}_mean", f"{name}_std", runs_key}
        failures = doc.get("failures", [])
        labels = doc.get("labels")
        if isinstance(labels, Mapping):  # before one table per run: the last run's
            labels = [labels]
        return cls(
            stats.pop(REWARD),
            _count(doc.get("examples", 0), f"{where}.examples"),
            tuple(_count(n, f"{where}.failures[{i}]") for i, n in enumerate(_array(failures, f"{where}.failures"))),
            stats,
            None if labels is None else tuple(_object(t, f"{where}.labels[{i}]")
                                              for i, t in enumerate(_array(labels, f"{where}.labels"))),
            {k: v for k, v in doc.items() if k not in known},
        )


@dataclass(frozen=True, slots=True)
class Difference:
    """A paired difference over `n` test rows: its mean and standard error."""

    mean: float
    se: float
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"mean": self.mean, "se": self.se, "n": self.n}

    @classmethod
    def of(cls, estimate: Estimate) -> "Difference":
        """The record of a paired difference (`estimate.paired`)."""
        return cls(estimate.mean, float(estimate.stderr), estimate.n)

    @classmethod
    def from_json(cls, value: Any, where: str) -> "Difference":
        doc = _object(value, where)
        return cls(_number(doc.get("mean"), f"{where}.mean"), _number(doc.get("se"), f"{where}.se"),
                   _count(doc.get("n"), f"{where}.n"))


# ---- the data, the history ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataRecord:
    """The data a fit read: its name, loader and arguments, the size of each split, and the
    data check (`datasets.quality.DataCheck.to_json`: fingerprints, rows, duplicates, leaks,
    warnings), kept as that module writes it."""

    name: str
    loader: str
    args: Mapping[str, Any] = field(default_factory=dict)
    sizes: Mapping[str, int] = field(default_factory=dict)
    check: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "loader": self.loader, "args": dict(self.args), "sizes": dict(self.sizes),
                **self.check}

    @classmethod
    def from_json(cls, value: Any, where: str = "data") -> "DataRecord":
        doc = _object(value, where)
        sizes = {k: _count(v, f"{where}.sizes.{k}") for k, v in _object(doc.get("sizes", {}), f"{where}.sizes").items()}
        return cls(_text(doc.get("name"), f"{where}.name"), _text(doc.get("loader"), f"{where}.loader"),
                   _object(doc.get("args", {}), f"{where}.args"), sizes,
                   {k: v for k, v in doc.items() if k not in ("name", "loader", "args", "sizes")})

    @property
    def fingerprints(self) -> Mapping[str, str]:
        return self.check.get("fingerprint") or {}

    @property
    def rows(self) -> Mapping[str, int]:
        return self.check.get("rows") or {}


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """What the training epochs left: per-epoch logs (`reward`, metrics, `val_` twins), the
    validation logs before training (`initial`, keyed `val_reward`, `val_<metric>`), the kept
    epoch (0: the untrained states), why training stopped early, what optimizers did, and
    the LM usage of training and validation."""

    history: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    initial: Mapping[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    epochs_run: int = 0
    stopped: str | None = None
    events: tuple[Mapping[str, Any], ...] = ()
    usage: CallStats = CallStats()

    KEYS: ClassVar[tuple[str, ...]] = ("history", "best_epoch", "epochs_run", "stopped", "optimizer_events", "usage")

    @classmethod
    def of(cls, history: History) -> "HistoryRecord":
        """The record of a fit's History."""
        return cls({k: tuple(v) for k, v in history.history.items()}, dict(history.initial), history.best_epoch,
                   history.epochs_run, history.stopped, tuple(history.events), history.usage)

    def to_json(self) -> dict[str, Any]:
        return {
            "history": {k: list(v) for k, v in self.history.items()},
            "initial_val_reward": self.initial.get("val_reward"),
            **{f"initial_{k}": v for k, v in self.initial.items() if k != "val_reward"},
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "stopped": self.stopped,
            "optimizer_events": [dict(e) for e in self.events],
            "usage": self.usage.to_json(),
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "HistoryRecord":
        """From the training section's keys (the history's are not nested)."""
        history = {k: _numbers(v, f"history.{k}") for k, v in _object(doc.get("history", {}), "history").items()}
        initial = {k[len("initial_"):]: _number(v, k) for k, v in doc.items()
                   if k.startswith("initial_") and v is not None}
        stopped = doc.get("stopped")
        events = _array(doc.get("optimizer_events", []), "optimizer_events")
        return cls(history, initial, _count(doc.get("best_epoch", 0), "best_epoch"),
                   _count(doc.get("epochs_run", max(map(len, history.values()), default=0)), "epochs_run"),
                   None if stopped is None else _text(stopped, "stopped"),
                   tuple(_object(e, f"optimizer_events[{i}]") for i, e in enumerate(events)),
                   _stats(doc["usage"], "usage") if "usage" in doc else CallStats())


# ---- the record ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrainingRecord:
    """The artifact's `training` section (see the module)."""

    settings: Mapping[str, Any] = field(default_factory=dict)  # the train block's: `dataclasses.asdict(TrainSpec)`
    data: DataRecord | None = None
    history: HistoryRecord = field(default_factory=HistoryRecord)
    scores: Mapping[str, ScoreRecord] = field(default_factory=dict)  # "untrained", "trained"
    baselines: tuple[Mapping[str, Any], ...] = ()  # as training/baselines.py writes them
    total_usage: CallStats = CallStats()
    usage_by_step: Mapping[str, CallStats] = field(default_factory=dict)
    usage_by_lm: Mapping[str, CallStats] = field(default_factory=dict)
    trained_minus_untrained: Difference | None = None
    other: Mapping[str, Any] = field(default_factory=dict)  # keys this icldsl does not know, kept as read

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "train": dict(self.settings),
            **({"data": self.data.to_json()} if self.data is not None else {}),
            **self.history.to_json(),
            "scores": {label: score.to_json() for label, score in self.scores.items()},
            "baselines": [dict(b) for b in self.baselines],
            "total_usage": self.total_usage.to_json(),
            "usage_by_step": {k: v.to_json() for k, v in self.usage_by_step.items()},
            "usage_by_lm": {k: v.to_json() for k, v in self.usage_by_lm.items()},
        }
        if self.trained_minus_untrained is not None:
            doc["trained_minus_untrained"] = self.trained_minus_untrained.to_json()
        return {**doc, **self.other}

    @classmethod
    def from_json(cls, value: Any) -> "TrainingRecord":
        """The record of an artifact's `training` section (None or absent: an empty record)."""
        doc = _object({} if value is None else value, "")
        known = {"train", "data", "scores", "baselines", "total_usage", "usage_by_step", "usage_by_lm",
                 "trained_minus_untrained", *HistoryRecord.KEYS}
        scores = _object(doc.get("scores", {}), "scores")
        baselines = _array(doc.get("baselines", []), "baselines")
        gain = doc.get("trained_minus_untrained")
        return cls(
            _object(doc.get("train", {}), "train"),
            DataRecord.from_json(doc["data"]) if doc.get("data") is not None else None,
            HistoryRecord.from_json(doc),
            {label: ScoreRecord.from_json(s, f"scores.{label}") for label, s in scores.items()},
            tuple(_object(b, f"baselines[{i}]") for i, b in enumerate(baselines)),
            _stats(doc["total_usage"], "total_usage") if "total_usage" in doc else CallStats(),
            _stats_by(doc.get("usage_by_step", {}), "usage_by_step"),
            _stats_by(doc.get("usage_by_lm", {}), "usage_by_lm"),
            None if gain is None else Difference.from_json(gain, "trained_minus_untrained"),
            {k: v for k, v in doc.items() if k not in known and not k.startswith("initial_")},
        )

    @classmethod
    def of_artifact(cls, doc: Mapping[str, Any], path: str = "the artifact") -> "TrainingRecord":
        """The record of an artifact document (read from `path`, which an ArtifactError names)."""
        try:
            return cls.from_json(doc.get("training"))
        except ArtifactError as exc:
            raise ArtifactError(f"{path}: {exc}") from None

    @property
    def run_count(self) -> int:
        """How many times the test set was scored: the most runs of any program state's metric."""
        return max((s.run_count for s in self.scores.values()), default=0)
