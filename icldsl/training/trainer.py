"""`evaluate` and `fit`: Keras's loop, async, with rewards tied to their predictions."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Protocol, Sequence

import numpy as np

from ..datasets.base import Example
from ..language.catalogue.training import MODE, MONITOR, TRAIN_SETTINGS
from ..runtime.program import Program
from ..runtime.state import StepState
from .checkpoint import Resume
from .context import Context, Optimizer
from .estimate import MIN_COMPARED, refusal
from .history import Evaluation, History
from .scored import Scored
from .resources import Resources
from .rewards import Reward
from .usage import CallStats, UsageTable


class Progress(Protocol):
    """progress(label, done, total, mean reward so far, cache_hits=LM calls the cache answered so far)."""

    def __call__(self, label: str, done: int, total: int, reward: float, *, cache_hits: int = 0) -> None: ...


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
    concurrency: int = TRAIN_SETTINGS.defaults["concurrency"],
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


def _epoch_refusal(monitor: str, mode: str, val: Evaluation | None, best: Evaluation | None) -> str | None:
    """Why an epoch whose `val_reward` beats the best so far may still not replace it: the
    optimizers' gate (`estimate.refusal`) on the two states' validation rewards, paired.
    Other monitors, validation sets of fewer than `MIN_COMPARED` rows (whose standard
    error means little; the optimizers refuse to switch on them) and a resumed fit's first
    epochs (the best's predictions are not saved) need only be better."""
    if monitor != "val_reward" or val is None or best is None or len(val.scored) != len(best.scored) \
            or len(val.scored) < MIN_COMPARED:
        return None
    sign = 1.0 if mode == "max" else -1.0
    return refusal([sign * s.reward for s in val.scored], [sign * s.reward for s in best.scored])


class EpochEnd(Protocol):
    """A callback after each epoch: the epoch, its logs, the states it ended with,
    and the history so far (the CSV log and the checkpoint are such callbacks)."""

    def __call__(self, epoch: int, logs: Mapping[str, float], states: Mapping[str, StepState],
                 history: History) -> None: ...


def _logs(prefix: str, evaluation: Evaluation, metrics: Metrics | None) -> dict[str, float]:
    logs = {f"{prefix}reward": evaluation.reward}
    if metrics is not None:
        logs.update({f"{prefix}{k}": v for k, v in metrics(evaluation.scored).items()})
    return logs


@dataclass(frozen=True, slots=True)
class Stage:
    """One part of what `fit` runs. `kind` "validation" or "training": `runs` runs of the
    program on that split in `epoch` (0: before training), `trained` of them after the
    optimizer's first proposal, `calls` LM calls. `kind` "optimizer": the LM calls the
    chain's `member`-th optimizer adds over the whole fit (its `planned_calls`, an upper bound)."""

    kind: Literal["validation", "training", "optimizer"]
    epoch: int | None
    runs: int
    trained: int
    calls: int
    member: int | None = None


@dataclass(frozen=True, slots=True)
class Schedule:
    """What `fit` runs, known before it runs (`icldsl plan` shows it), for a fit that is not
    resumed, stopped early or stopped by its budget: the validation set before training and
    after every epoch; every epoch, the training set batch by batch, the optimizer proposing
    after each batch. When the optimizer learns from the data alone (`needs_runs` false) and
    `monitor` is a validation metric, it proposes once per epoch instead and `trains` is false:
    the program does not run on the training examples."""

    optimizer: Optimizer
    epochs: int
    batch_size: int
    train: int  # examples
    validation: int
    trains: bool

    @classmethod
    def of(cls, optimizer: Optimizer, program: Program, train: Sequence[Example], validation: Sequence[Example],
           *, epochs: int, batch_size: int, monitor: str) -> Schedule:
        trains = optimizer.needs_runs(program, train) or not monitor.startswith("val_")
        return cls(optimizer, epochs, batch_size, len(train), len(validation), trains)

    @property
    def batches(self) -> int:
        """Batches per epoch (as the optimizers' `planned_calls` are told, even when `trains` is false)."""
        return math.ceil(self.train / self.batch_size)

    def stages(self, calls_per_run: int) -> tuple[Stage, ...]:
        """Every stage in the order it runs, then what each optimizer adds over the whole fit,
        for a program whose every run makes `calls_per_run` LM calls."""
        stages = []
        if self.validation:
            stages.append(Stage("validation", 0, self.validation, 0, self.validation * calls_per_run))
        for epoch in range(1, self.epochs + 1):
            if self.trains:
                untrained = min(self.batch_size, self.train) if epoch == 1 else 0  # before the first proposal
                stages.append(Stage("training", epoch, self.train, self.train - untrained, self.train * calls_per_run))
            if self.validation:
                stages.append(Stage("validation", epoch, self.validation, self.validation,
                                    self.validation * calls_per_run))
        for i, member in enumerate(self.optimizer.members()):
            calls = member.planned_calls(train=self.train, validation=self.validation, epochs=self.epochs,
                                         batches=self.batches, lm_steps=calls_per_run)
            stages.append(Stage("optimizer", None, 0, 0, calls, i))
        return tuple(stages)


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
    concurrency: int = TRAIN_SETTINGS.defaults["concurrency"],
    monitor: str = MONITOR,
    mode: str = MODE,
    patience: int | None = None,
    budget: Budget | None = None,
    metrics: Metrics | None = None,
    resources: Resources | None = None,
    progress: Progress | None = None,
    callbacks: Sequence[EpochEnd] = (),
    resume: Resume | None = None,
) -> tuple[Program, History]:
    """Train the program's step states; return the best program and the history.

    Each epoch shuffles `train` (seeded by `rng`) and runs it batch by batch;
    after each batch the optimizer proposes new states from the epoch's scored
    predictions so far. An optimizer that learns from the data alone (`needs_runs`
    false) proposes once per epoch instead, and no training metrics are logged,
    unless `monitor` is one of them (`Schedule` says which). The validation set is scored before training and after
    every epoch; the states with the best `monitor` are kept, and the untrained
    program stays unless an epoch beats it: by more than the standard error of the paired
    difference of their validation rewards when `monitor` is `val_reward` and validation
    has at least `estimate.MIN_COMPARED` rows (the optimizers' gate; a refused epoch is
    noted in the history's events), strictly otherwise. Training stops early after
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
    runs = Schedule.of(optimizer, program, train, validation, epochs=epochs, batch_size=batch_size,
                       monitor=monitor).trains
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
            improved = current is not None and (best is None or _better(current, best, mode))
            refused = None if not improved or best is None else _epoch_refusal(monitor, mode, val,
                                                                                history.validation)
            if refused is not None:
                ctx.note({"optimizer": "epoch checkpoint", "kept": False,
                          "reason": f"{monitor} {current:.3f} against the best {best:.3f}: {refused}"})
            if improved and refused is None:
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
