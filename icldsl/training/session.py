"""What `icldsl fit` and `icldsl eval` do with a compiled file: load its data,
score the untrained program, train, score again, and freeze the result."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..artifact import freeze
from ..language.specs import Compiled, TrainSpec
from ..errors import Error
from ..datasets import Dataset, Example, load_dataset
from ..datasets.quality import inspect as inspect_data
from ..lm.base import LMClient
from ..lm.cache import LMCache, Mode
from ..lm.trace import Tracer
from ..language.options import EMBEDDING_NAME, LM_NAME, Function
from ..runtime import bounds
from ..runtime.program import Program
from ..runtime.state import spec_and_states
from .baselines import baselines
from .chain import Chain
from .checkpoint import CheckpointWriter, read_checkpoint
from .context import Optimizer
from .csvlog import CSVLog
from .estimate import Estimate, paired
from .metrics import Metrics
from ..language.catalogue.training import OPTIMIZERS, REWARDS
from .resources import Resources
from .rewards import Reward
from .history import Evaluation, History
from .trainer import Budget, Progress, evaluate, fit
from .training_record import DataRecord, Difference, HistoryRecord, ScoreRecord, Stat, TrainingRecord
from .usage import CallStats, UsageTable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Scores:
    """Test reward over `runs` repeated evaluations, with the metrics of each run.

    In the artifact they are a `ScoreRecord` (training/training_record.py)."""

    runs: tuple[Evaluation, ...]
    metrics: Metrics | None = None
    reward_usage: UsageTable = dataclasses.field(default_factory=UsageTable)  # a judge's calls, say

    @property
    def mean(self) -> float:
        return float(np.mean([r.reward for r in self.runs]))

    @property
    def std(self) -> float:
        return float(np.std([r.reward for r in self.runs]))

    def metric_runs(self) -> list[dict[str, float]]:
        return [self.metrics(r.scored) for r in self.runs] if self.metrics else []

    def label_tables(self) -> list[dict[str, Any]]:
        """Precision, recall, F1 and support per label of each enum field, one table per run."""
        return [self.metrics.labels(r.scored) for r in self.runs] if self.metrics else []

    def record(self) -> ScoreRecord:
        """What the artifact keeps of these scores."""
        metrics, labels = {}, None
        if self.metrics and self.runs:
            runs = self.metric_runs()
            for key in runs[0]:
                values = [m[key] for m in runs]
                metrics[key] = Stat(float(np.mean(values)), float(np.std(values)), tuple(values))
            labels = tuple(self.label_tables())
        return ScoreRecord(Stat(self.mean, self.std, tuple(r.reward for r in self.runs)),
                           len(self.runs[0].scored) if self.runs else 0, tuple(r.failures for r in self.runs),
                           metrics, labels)

    def to_json(self) -> dict[str, Any]:
        return self.record().to_json()

    @property
    def usage_table(self) -> UsageTable:
        """The program's calls and the reward's."""
        return sum((r.usage_table for r in self.runs), self.reward_usage)


def trained_minus_untrained(untrained: Scores, trained: Scores) -> Estimate | None:
    """The reward of trained minus untrained, paired over the same test examples (the last
    run of each), with its standard error; None without runs to compare."""
    if not untrained.runs or not trained.runs:
        return None
    return paired([s.reward for s in trained.runs[-1].scored], [s.reward for s in untrained.runs[-1].scored])


@dataclass(frozen=True, slots=True)
class FitReport:
    """`usage_table` covers every LM call of the session; `usage` is its total."""

    program: Program
    history: History
    untrained: Scores
    trained: Scores
    sizes: Mapping[str, int]
    usage: CallStats
    artifact: dict
    usage_table: UsageTable = dataclasses.field(default_factory=UsageTable)
    baselines: tuple[dict[str, Any], ...] = ()  # the retriever alone on the test rows (training.baselines)


def program_of(compiled: Compiled, name: str, clients: Mapping[str, LMClient] | None = None, *,
               cache: LMCache | None = None, cache_mode: Mode = "normal",
               tracers: Sequence[Tracer] | None = None) -> Program:
    """The program `name` of a compiled file; with a `cache`, its LM calls go through it."""
    spec, states = spec_and_states(compiled, name)
    return Program(spec, states, clients, search_path=(compiled.base_dir,), cache=cache, cache_mode=cache_mode,
                   tracers=tracers)


class NoTrainBlock(Error):
    """`fit`, `eval` and `plan` need a train block, for the program asked for."""


def train_block(compiled: Compiled, program: str | None = None) -> TrainSpec:
    """The train block of `program`, or the file's first."""
    try:
        return compiled.train(program)
    except KeyError:
        raise NoTrainBlock(f"{compiled.source.name} has no train block"
                           + (f" for program `{program}`" if program else "")
                           + "; fit and eval need one (see programs/gsm8k.icl)") from None


def load_data(compiled: Compiled, train: TrainSpec, program: Program) -> Dataset:
    spec = compiled.data[train.data]
    return load_dataset(
        spec.name, spec.loader, spec.args, base_dir=spec.base_dir,
        x_model=program.input_model, y_model=program.output_model,
    )


def split(examples: Sequence[Example], fraction: float, rng: np.random.Generator) -> tuple[list, list]:
    """A seeded split into (train, validation); each keeps at least one example when it can."""
    order = rng.permutation(len(examples))
    n_val = min(max(1, round(len(examples) * fraction)), len(examples) - 1) if len(examples) > 1 else 0
    val = sorted(order[:n_val])
    keep = sorted(order[n_val:])
    return [examples[i] for i in keep], [examples[i] for i in val]


class SettingError(Error, ValueError):
    """A reward or optimizer refused its options (the message names which)."""


MAX_FAILED_SHARE = 0.5  # `fit` writes no artifact when more of its test predictions than this failed


class FitFailed(Error):
    """So many predictions failed that the fit measures nothing: most often a wrong key,
    model name or base_url, which the provider's message says."""


def failed_predictions(*scores: Scores) -> tuple[int, int, str | None, int]:
    """(failed, total) test predictions over every run of `scores`, and the most common
    failure's message with how often it came."""
    errors = [s.trace.error or "no output" for score in scores for run in score.runs for s in run.scored
              if s.trace.output is None]
    total = sum(len(run.scored) for score in scores for run in score.runs)
    common = Counter(errors).most_common(1)
    return len(errors), total, *(common[0] if common else (None, 0))


def failure_message(failed: int, total: int, error: str | None, count: int, what: str) -> str:
    return (f"{failed} of {total} {what} failed; the most common failure ({count} time{'s' if count != 1 else ''}): "
            f"{error}")


def resources_of(compiled: Compiled, cache: LMCache | None, cache_mode: Mode,
                 clients: Mapping[str, LMClient] | None = None,
                 tracers: Sequence[Tracer] | None = None, program: Program | None = None) -> Resources:
    """The file's lms and embeddings, for rewards and optimizers; given `clients` are used as
    they are. With `program`, they connect through the program's clients: one client per lm
    name for the whole session, which the program closes."""
    return Resources(compiled.lms, compiled.embeddings, cache, cache_mode, dict(clients or {}),
                     (compiled.base_dir,), tracers=tracers,
                     connections=program.clients if program is not None else None)


def _make(function: Function, options: Mapping[str, Any], resources: Resources, purpose: str) -> Any:
    """Call a reward or optimizer factory, its `lm` and `embedding` options turned into the objects they name."""
    bound = dict(options)
    for key, value in options.items():
        kind = function.signature.options.get(key)
        if kind is LM_NAME:
            bound[key] = resources.lm(value, purpose)
        elif kind is EMBEDDING_NAME:
            bound[key] = resources.embedder(value)
    try:
        return function.make(**bound, resources=resources) if function.resources else function.make(**bound)
    except ValueError as exc:  # what the checker refuses too (the same declarations): for specs not from a file
        name = purpose.split()[-1]
        raise SettingError(str(exc) if name in str(exc) else f"{purpose}: {exc}") from None


def make_reward(train: TrainSpec, resources: Resources) -> Reward:
    name, options = train.reward
    return _make(REWARDS[name], options, resources, f"reward {name}")


def make_optimizer(train: TrainSpec, resources: Resources) -> Optimizer:
    made = tuple(_make(OPTIMIZERS[name], options, resources, f"optimizer {name}") for name, options in train.optimizers)
    return made[0] if len(made) == 1 else Chain(made)


async def score_runs(program: Program, examples: Sequence[Example], reward: Reward, train: TrainSpec,
                     label: str, progress: Progress | None, resources: Resources) -> Scores:
    """`train.runs` evaluations; run r (from 0) sends each LM's seed + r, so at a temperature
    above 0 every run samples its own answers (the checker refuses `runs` at temperature 0).
    The calls the reward made through `resources` count in its usage."""
    spent_before = len(resources.records)
    runs = []
    for run in range(train.runs):
        tag = label if train.runs == 1 else f"{label} {run + 1}/{train.runs}"
        runs.append(await evaluate(program.reseeded(run) if run else program, examples, reward,
                                   concurrency=train.concurrency, label=tag, progress=progress))
    return Scores(tuple(runs), Metrics(program.spec), UsageTable.of_records(resources.records[spent_before:]))


def with_data_bounds(program: Program, examples: Sequence[Example]) -> tuple[Program, tuple[str, ...]]:
    """`program` with the string bounds its steps take from the expected outputs of the
    training `examples` (runtime/bounds.py), and the warnings of bounds its LMs' `max_tokens`
    cut; `fit`, `plan` and `eval` of a source all make them so."""
    found = bounds.from_training(program, [e.y for e in examples])
    return program.with_states({path: state.with_bounds(found.bounds[path]) if path in found.bounds else state
                                for path, state in program.states.items()}), found.warnings


async def fit_compiled(
    compiled: Compiled,
    train: TrainSpec,
    *,
    clients: Mapping[str, LMClient] | None = None,
    cache: LMCache | None = None,
    cache_mode: Mode = "normal",
    progress: Progress | None = None,
    checkpoint: Path | None = None,
    csv_log: Path | None = None,
    tracers: Sequence[Tracer] | None = None,
) -> FitReport:
    """Score the untrained program, train it, score it again, and freeze it.

    With a `cache`, every LM call goes through it (see `icldsl.lm.cache`), so a
    re-run, or a run after an interruption, replays the calls already made. With a
    `checkpoint` path, the fit's state is written there after every epoch, and a
    checkpoint left there by an interrupted run of the same fit is resumed from.
    With `csv_log`, the history is written there as CSV after every epoch. `tracers`
    receive every LM call, the program's and the reward's and optimizers' alike.
    """
    program = program_of(compiled, train.program, clients, cache=cache, cache_mode=cache_mode, tracers=tracers)
    resources = resources_of(compiled, cache, cache_mode, clients, tracers, program)
    try:
        program.tools()  # imported now: a module that fails to import stops the fit before any LM call
        data = load_data(compiled, train, program)
        data_check = inspect_data(data)
        for warning in data_check.warnings():
            log.warning("%s", warning)
        program, cut = with_data_bounds(program, data.train)
        for warning in cut:
            log.warning("%s", warning)
        rng = np.random.default_rng(train.seed)
        train_set, val_set = split(data.train, train.validation_split, rng)
        reward = make_reward(train, resources)
        optimizer = make_optimizer(train, resources)
        metrics = Metrics(program.spec)
        fingerprint = {"source": compiled.source.sha256, "train": json.loads(json.dumps(dataclasses.asdict(train))),
                       "data": data_check.to_json()}
        resume = read_checkpoint(checkpoint, fingerprint, program.states) if checkpoint else None
        callbacks: list = [CSVLog(csv_log)] if csv_log else []
        if checkpoint:
            best = None if resume is None else resume.best_states()
            callbacks.append(CheckpointWriter(checkpoint, fingerprint, rng, train.monitor, best))
        if resume is not None:
            log.warning("resuming from %s after epoch %d", checkpoint, resume.epoch)

        untrained = await score_runs(program, data.test, reward, train, "test (untrained)", progress, resources)
        failed, total, error, count = failed_predictions(untrained)
        if total and failed == total and not untrained.usage_table.total.missing:  # offline misses say so later
            raise FitFailed(failure_message(failed, total, error, count, "test predictions of the untrained "
                                            "program") + "; nothing can be learned, so training did not start")
        trained_program, history = await fit(
            program, train_set, val_set, reward, optimizer,
            epochs=train.epochs, batch_size=train.batch_size, rng=rng, concurrency=train.concurrency,
            monitor=train.monitor, mode=train.mode, patience=train.early_stopping,
            budget=Budget(**train.budget) if train.budget else None, metrics=metrics, resources=resources,
            progress=progress, callbacks=callbacks, resume=resume,
        )
        trained = await score_runs(trained_program, data.test, reward, train, "test (trained)", progress, resources)
    finally:
        await program.aclose()
        await resources.aclose()

    table = untrained.usage_table + history.usage_table + trained.usage_table
    usage = table.total
    sizes = {"train": len(train_set), "validation": len(val_set), "test": len(data.test)}
    retriever_alone = baselines(trained_program, trained.runs[-1].scored) if trained.runs else []
    gain = trained_minus_untrained(untrained, trained)
    data_spec = compiled.data[train.data]
    record = TrainingRecord(
        settings=dataclasses.asdict(train),
        data=DataRecord(data.name, data_spec.loader, dict(data_spec.args), sizes, data_check.to_json()),
        history=HistoryRecord.of(history),
        scores={"untrained": untrained.record(), "trained": trained.record()},
        baselines=tuple(retriever_alone),
        total_usage=usage,
        usage_by_step=dict(sorted(table.steps.items())),
        usage_by_lm=dict(sorted(table.lms.items())),
        # what the report's headline shows
        trained_minus_untrained=None if gain is None else Difference.of(gain),
    )
    doc = freeze(trained_program, source_file=str(Path(compiled.source.name)),
                 source_sha256=compiled.source.sha256, training=record.to_json())
    return FitReport(trained_program, history, untrained, trained, sizes, usage, doc, table, tuple(retriever_alone))


async def eval_compiled(
    compiled: Compiled,
    train: TrainSpec,
    program: Program,
    *,
    progress: Progress | None = None,
    data_bounds: bool = False,
) -> Scores:
    """The program's reward on the test split of its train block's data; with `data_bounds`
    (the untrained program of a source file), with the string bounds a fit takes from the
    training data, so that it scores as `fit`'s untrained program does."""
    resources = resources_of(compiled, program.cache, program.cache_mode, tracers=program.clients.tracers,
                             program=program)
    try:
        program.tools()  # imported now: a module that fails to import stops before any LM call
        data = load_data(compiled, train, program)
        if data_bounds:
            program, _ = with_data_bounds(program, data.train)  # fit warned of a cut
        return await score_runs(program, data.test, make_reward(train, resources), train, "test", progress,
                                resources)
    finally:
        await program.aclose()
        await resources.aclose()
