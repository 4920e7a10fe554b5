"""`evaluate` and `fit`: Keras's loop, async, with rewards tied to their predictions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Callable, Iterable, Mapping, Protocol, Sequence

import numpy as np

from ..datasets.base import Example
from ..runtime.program import Program
from ..runtime.state import StepRecord, StepState
from .context import Context, Optimizer, learns_from_runs
from .records import Scored
from .resources import Resources
from .rewards import Reward

if TYPE_CHECKING:  # checkpoint imports this module
    from .checkpoint import Resume


class Progress(Protocol):
    """progress(label, done, total, mean reward so far, cache_hits=LM calls the cache answered so far)."""

    def __call__(self, label: str, done: int, total: int, reward: float, *, cache_hits: int = 0) -> None: ...


@dataclass(frozen=True, slots=True)
class CallStats:
    """LM calls made by a set of runs, and what they cost.

    `calls` counts requests whether the cache answered them or not, and tokens are
    what the requests cost when they were made, so a re-run from the cache counts the
    same; `failures` counts step runs that called an LM and produced no output;
    `cache_hits` and `missing` (requests refused offline) depend on the cache, and
    `latencies` (seconds of the requests that reached an LM) on the clock.
    """

    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    missing: int = 0
    latencies: tuple[float, ...] = ()

    def __add__(self, other: "CallStats") -> "CallStats":
        return CallStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @classmethod
    def of_record(cls, record: StepRecord) -> "CallStats":
        return cls(record.calls, int(record.calls > 0 and record.output is None), record.usage.prompt_tokens,
                   record.usage.completion_tokens, record.cache_hits, record.missing, record.latencies)

    @classmethod
    def of(cls, scored: Sequence[Scored]) -> "CallStats":
        return UsageTable.of(scored).total

    @property
    def sent(self) -> int:
        """Requests that reached an LM."""
        return self.calls - self.cache_hits - self.missing

    def latency(self, percentile: float | None = None) -> float | None:
        """Mean seconds per request sent (or the given percentile); None when none was."""
        if not self.latencies:
            return None
        values = np.asarray(self.latencies)
        return float(values.mean() if percentile is None else np.percentile(values, percentile))

    def to_json(self) -> dict[str, int]:
        """The counts a re-run from the cache repeats exactly (for the artifact)."""
        return {"calls": self.calls, "failures": self.failures, "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens}


@dataclass(frozen=True, slots=True)
class UsageTable:
    """LM usage per step path and per LM name."""

    steps: Mapping[str, CallStats] = field(default_factory=dict)
    lms: Mapping[str, CallStats] = field(default_factory=dict)

    @classmethod
    def of(cls, scored: Sequence[Scored]) -> "UsageTable":
        """Usage of the step runs that called an LM, by step path and by LM."""
        return cls.of_records((path, r) for s in scored for path, r in s.trace.steps.items() if r.calls)

    @classmethod
    def of_records(cls, records: Iterable[tuple[str, StepRecord]]) -> "UsageTable":
        """Usage of (key, record) pairs, by key and by the record's LM."""
        steps: dict[str, CallStats] = {}
        lms: dict[str, CallStats] = {}
        for key, record in records:
            stats = CallStats.of_record(record)
            steps[key] = steps.get(key, CallStats()) + stats
            lms[record.lm or "?"] = lms.get(record.lm or "?", CallStats()) + stats
        return cls(steps, lms)

    def __add__(self, other: "UsageTable") -> "UsageTable":
        def merge(a: Mapping[str, CallStats], b: Mapping[str, CallStats]) -> dict[str, CallStats]:
            return {k: a.get(k, CallStats()) + b.get(k, CallStats()) for k in sorted({*a, *b})}
        return UsageTable(merge(self.steps, other.steps), merge(self.lms, other.lms))

    @property
    def total(self) -> CallStats:
        return sum(self.steps.values(), CallStats())

    def to_json(self) -> dict[str, dict[str, dict[str, int]]]:
        """Counts per step and per LM that a re-run from the cache repeats exactly."""
        return {"steps": {k: v.to_json() for k, v in sorted(self.steps.items())},
                "lms": {k: v.to_json() for k, v in sorted(self.lms.items())}}


@dataclass(frozen=True, slots=True)
class Evaluation:
    reward: float
    scored: tuple[Scored, ...]

    @property
    def failures(self) -> int:
        return sum(s.trace.output is None for s in self.scored)

    @property
    def usage(self) -> CallStats:
        return CallStats.of(self.scored)

    @property
    def usage_table(self) -> UsageTable:
        return UsageTable.of(self.scored)


async def score(
    program: Program,
    examples: Sequence[Example],
    reward: Reward,
    *,
    concurrency: int,
    label: str = "eval",
    progress: Progress | None = None,
) -> list[Scored]:
    """Run every example (at most `concurrency` at once) and reward each prediction.

    Results keep the order of `examples`: each reward is computed from the trace
    of its own example, whatever order the calls finish in.
    """
    limit = asyncio.Semaphore(concurrency)
    results: list[Scored | None] = [None] * len(examples)
    done, total_reward, cache_hits = 0, 0.0, 0

    async def one(i: int, example: Example) -> None:
        nonlocal done, total_reward, cache_hits
        async with limit:
            trace = await program.run(example.x)
            grade = await reward(example.x, example.y, trace.output)
        results[i] = Scored(example, trace, grade.score, grade.feedback)
        done += 1
        total_reward += results[i].reward
        cache_hits += sum(record.cache_hits for record in trace.steps.values())
        if progress:
            progress(label, done, len(examples), total_reward / done, cache_hits=cache_hits)

    if progress:
        progress(label, 0, len(examples), 0.0, cache_hits=0)
    await asyncio.gather(*(one(i, ex) for i, ex in enumerate(examples)))
    return [r for r in results if r is not None]


async def evaluate(
    program: Program,
    examples: Sequence[Example],
    reward: Reward,
    *,
    concurrency: int = 4,
    label: str = "eval",
    progress: Progress | None = None,
) -> Evaluation:
    """Mean reward over `examples`; a failed prediction counts as 0."""
    scored = await score(program, examples, reward, concurrency=concurrency, label=label, progress=progress)
    mean = float(np.mean([s.reward for s in scored])) if scored else 0.0
    return Evaluation(mean, tuple(scored))


Metrics = Callable[[Sequence[Scored]], Mapping[str, float]]


@dataclass(frozen=True, slots=True)
class Budget:
    """Limits on the LM calls and tokens training may spend (None: no limit)."""

    calls: int | None = None
    tokens: int | None = None

    def reached(self, spent: CallStats) -> bool:
        return (self.calls is not None and spent.calls >= self.calls) or \
            (self.tokens is not None and spent.prompt_tokens + spent.completion_tokens >= self.tokens)


class BudgetReached(Exception):
    """Raised inside training when the budget is spent; `fit` stops cleanly on it."""


@dataclass(slots=True)
class History:
    """Per-epoch logs, Keras-style: `reward`, `<metric>`, `val_reward`, `val_<metric>`.

    `events` records what optimizers did (candidates compared, on how many examples,
    with what spread); `stopped` why training ended before its last epoch, if it did.
    """

    history: dict[str, list[float]] = field(default_factory=dict)
    initial: dict[str, float] = field(default_factory=dict)  # validation logs before training
    best_epoch: int = 0  # 0: the untrained program was never beaten
    usage_table: UsageTable = field(default_factory=UsageTable)  # LM usage of training and validation
    validation: "Evaluation | None" = None  # the kept states' validation predictions (not saved)
    events: list[dict] = field(default_factory=list)
    stopped: str | None = None
    epochs_run: int = 0

    @property
    def usage(self) -> CallStats:
        return self.usage_table.total

    @property
    def initial_val_reward(self) -> float | None:
        return self.initial.get("val_reward")

    def log(self, logs: Mapping[str, float]) -> None:
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def to_json(self) -> dict:
        return {
            "history": self.history,
            "initial_val_reward": self.initial_val_reward,
            **{f"initial_{k}": v for k, v in self.initial.items() if k != "val_reward"},
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "stopped": self.stopped,
            "optimizer_events": self.events,
            "usage": self.usage.to_json(),
        }


def _epoch_progress(progress: Progress, earlier: Sequence[Scored], size: int) -> Progress:
    """Reports a batch as the rest of its epoch: counts, running reward and cache hits
    over the whole training set, after the `earlier` batches of the epoch."""
    base = len(earlier)
    reward_sum = sum(s.reward for s in earlier)
    hits = sum(r.cache_hits for s in earlier for r in s.trace.steps.values())

    def report(label: str, done: int, total: int, reward: float, *, cache_hits: int = 0) -> None:
        count = base + done
        mean = (reward_sum + reward * done) / count if count else 0.0
        progress(label, count, size, mean, cache_hits=hits + cache_hits)

    return report


def _better(value: float, best: float, mode: str) -> bool:
    return value > best if mode == "max" else value < best


class EpochEnd(Protocol):
    """A callback after each epoch: the epoch, its logs, the states it ended with,
    and the history so far (the CSV log and the checkpoint are such callbacks)."""

    def __call__(self, epoch: int, logs: Mapping[str, float], states: Mapping[str, StepState],
                 history: History) -> None: ...


def _logs(prefix: str, evaluation: "Evaluation", metrics: Metrics | None) -> dict[str, float]:
    logs = {f"{prefix}reward": evaluation.reward}
    if metrics is not None:
        logs.update({f"{prefix}{k}": v for k, v in metrics(evaluation.scored).items()})
    return logs


async def fit(
    program: Program,
    train: Sequence[Example],
    validation: Sequence[Example],
    reward: Reward,
    optimizer: Optimizer,
    *,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    concurrency: int = 4,
    monitor: str = "val_reward",
    mode: str = "max",
    patience: int | None = None,
    budget: Budget | None = None,
    metrics: Metrics | None = None,
    resources: Resources | None = None,
    progress: Progress | None = None,
    callbacks: Sequence[EpochEnd] = (),
    resume: "Resume | None" = None,
) -> tuple[Program, History]:
    """Train the program's step states; return the best program and the history.

    Each epoch shuffles `train` (seeded by `rng`) and runs it batch by batch;
    after each batch the optimizer proposes new states from the epoch's scored
    predictions so far. An optimizer that learns from the data alone (`needs_runs`
    false) proposes once per epoch instead, and no training metrics are logged,
    unless `monitor` is one of them. The validation set is scored before training and after
    every epoch; the states with the best `monitor` are kept, and the untrained
    program stays unless an epoch strictly beats it. Training stops early after
    `patience` epochs without improvement, or when `budget` is spent (LM calls of
    the program, of rewards and of optimizers all count); the best states so far
    are kept either way. `resume` continues a fit from its last finished epoch.
    """
    resources = resources or Resources()
    history = History()
    states = dict(program.states)
    best_states, best, first_epoch = states, None, 1
    spent_before = len(resources.records)

    def spent() -> CallStats:
        return history.usage + UsageTable.of_records(resources.records[spent_before:]).total

    async def evaluate_states(candidate: Mapping[str, StepState], examples: Sequence[Example],
                              label: str) -> Evaluation:
        if budget is not None and budget.reached(spent()):
            raise BudgetReached(label)
        result = await evaluate(program.with_states(candidate), examples, reward, concurrency=concurrency,
                                label=label, progress=progress)
        history.usage_table += result.usage_table
        return result

    ctx = Context(program, reward, train, validation, rng, resources, evaluate_states, events=history.events)
    runs = learns_from_runs(optimizer, program, train) or not monitor.startswith("val_")
    if resume is not None:
        states, best_states, best, first_epoch = resume.restore(history, rng)
    elif validation:
        initial = await evaluate_states(states, validation, "val 0")
        history.initial, history.validation = _logs("val_", initial, metrics), initial
        best = history.initial.get(monitor)
    waited = 0
    try:
        for epoch in range(first_epoch, epochs + 1):
            ctx.epoch = epoch
            epoch_scored: list[Scored] = []
            order = rng.permutation(len(train))
            starts = range(0, len(order), batch_size)
            if not runs:  # the optimizer learns from the data alone: once per epoch, no training runs
                if budget is not None and budget.reached(spent()):
                    raise BudgetReached(f"epoch {epoch}")
                ctx.end_of_epoch = True
                states = await optimizer.propose(states, epoch_scored, ctx)
                starts = range(0)
            for start in starts:
                if budget is not None and budget.reached(spent()):
                    raise BudgetReached(f"epoch {epoch}")
                batch = [train[i] for i in order[start : start + batch_size]]
                report = _epoch_progress(progress, epoch_scored, len(train)) if progress else None
                scored = await score(program.with_states(states), batch, reward, concurrency=concurrency,
                                     label=f"epoch {epoch}", progress=report)
                history.usage_table += UsageTable.of(scored)
                epoch_scored += scored
                ctx.end_of_epoch = start == starts[-1]
                states = await optimizer.propose(states, epoch_scored, ctx)
            logs = _logs("", Evaluation(float(np.mean([s.reward for s in epoch_scored])) if epoch_scored else 0.0,
                                        tuple(epoch_scored)), metrics) if runs else {}
            val = None
            if validation:
                val = await evaluate_states(states, validation, f"val {epoch}")
                logs.update(_logs("val_", val, metrics))
            history.log(logs)
            history.epochs_run = epoch
            current = logs.get(monitor)
            if current is not None and (best is None or _better(current, best, mode)):
                best, best_states, history.best_epoch, waited = current, states, epoch, 0
                history.validation = val
            else:
                waited += 1
            for callback in callbacks:
                callback(epoch, logs, states, history)
            if patience is not None and waited >= patience and epoch < epochs:
                history.stopped = f"early stopping: {monitor} did not improve for {patience} epoch(s)"
                break
    except BudgetReached as reached:
        total = spent()
        history.stopped = (f"budget reached during {reached}: {total.calls} LM calls, "
                           f"{total.prompt_tokens + total.completion_tokens} tokens")
    history.usage_table += UsageTable.of_records(resources.records[spent_before:])
    return program.with_states(best_states), history
