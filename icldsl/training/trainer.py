"""`evaluate` and `fit`: Keras's loop, async, with rewards tied to their predictions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Callable, Mapping, Protocol, Sequence

import numpy as np

from ..datasets.base import Example
from ..runtime.program import Program
from ..runtime.state import StepState
from .records import Scored
from .rewards import RewardFn

# progress(label, done, total, mean reward so far)
Progress = Callable[[str, int, int, float], None]


class Optimizer(Protocol):
    def propose(
        self, states: Mapping[str, StepState], scored: Sequence[Scored], rng: np.random.Generator
    ) -> dict[str, StepState]: ...


@dataclass(frozen=True, slots=True)
class CallStats:
    """LM calls made by a set of runs, and what they cost."""

    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: "CallStats") -> "CallStats":
        return CallStats(*(a + b for a, b in zip(self.astuple(), other.astuple())))

    def astuple(self) -> tuple[int, int, int, int]:
        return self.calls, self.failures, self.prompt_tokens, self.completion_tokens

    @classmethod
    def of(cls, scored: Sequence[Scored]) -> "CallStats":
        total = cls()
        for s in scored:
            for record in s.trace.steps.values():
                if record.error == "an earlier step failed":
                    continue
                total += cls(1, record.output is None, record.usage.prompt_tokens, record.usage.completion_tokens)
        return total


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


async def score(
    program: Program,
    examples: Sequence[Example],
    reward: RewardFn,
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
    done, total_reward = 0, 0.0

    async def one(i: int, example: Example) -> None:
        nonlocal done, total_reward
        async with limit:
            trace = await program.run(example.x)
        results[i] = Scored(example, trace, reward(example.y, trace.output))
        done += 1
        total_reward += results[i].reward
        if progress:
            progress(label, done, len(examples), total_reward / done)

    if progress:
        progress(label, 0, len(examples), 0.0)
    await asyncio.gather(*(one(i, ex) for i, ex in enumerate(examples)))
    return [r for r in results if r is not None]


async def evaluate(
    program: Program,
    examples: Sequence[Example],
    reward: RewardFn,
    *,
    concurrency: int = 4,
    label: str = "eval",
    progress: Progress | None = None,
) -> Evaluation:
    """Mean reward over `examples`; a failed prediction counts as 0."""
    scored = await score(program, examples, reward, concurrency=concurrency, label=label, progress=progress)
    mean = float(np.mean([s.reward for s in scored])) if scored else 0.0
    return Evaluation(mean, tuple(scored))


@dataclass(slots=True)
class History:
    """Per-epoch logs, Keras-style: `reward`, `val_reward`."""

    history: dict[str, list[float]] = field(default_factory=dict)
    initial_val_reward: float | None = None
    best_epoch: int = 0  # 0: the untrained program was never beaten
    usage: CallStats = field(default_factory=CallStats)

    def log(self, logs: Mapping[str, float]) -> None:
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)

    def to_json(self) -> dict:
        return {
            "history": self.history,
            "initial_val_reward": self.initial_val_reward,
            "best_epoch": self.best_epoch,
            "usage": dict(zip(("calls", "failures", "prompt_tokens", "completion_tokens"), self.usage.astuple())),
        }


def _better(value: float, best: float, mode: str) -> bool:
    return value > best if mode == "max" else value < best


async def fit(
    program: Program,
    train: Sequence[Example],
    validation: Sequence[Example],
    reward: RewardFn,
    optimizer: Optimizer,
    *,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator,
    concurrency: int = 4,
    monitor: str = "val_reward",
    mode: str = "max",
    progress: Progress | None = None,
    on_epoch_end: Callable[[int, Mapping[str, float], Mapping[str, StepState]], None] | None = None,
) -> tuple[Program, History]:
    """Train the program's step states; return the best program and the history.

    Each epoch shuffles `train` (seeded by `rng`) and runs it batch by batch;
    after each batch the optimizer proposes new states from the epoch's scored
    predictions so far. The validation set is scored before training and after
    every epoch; the states with the best `monitor` are kept, and the untrained
    program stays unless an epoch strictly beats it.
    """
    history = History()
    states = dict(program.states)
    best_states = states
    best = None
    if validation:
        initial = await evaluate(program, validation, reward, concurrency=concurrency, label="val 0",
                                 progress=progress)
        history.initial_val_reward = initial.reward
        history.usage += initial.usage
        best = initial.reward if monitor == "val_reward" else None
    for epoch in range(1, epochs + 1):
        epoch_scored: list[Scored] = []
        order = rng.permutation(len(train))
        for start in range(0, len(order), batch_size):
            batch = [train[i] for i in order[start : start + batch_size]]
            epoch_scored += await score(program.with_states(states), batch, reward, concurrency=concurrency,
                                        label=f"epoch {epoch}", progress=progress)
            states = optimizer.propose(states, epoch_scored, rng)
        logs = {"reward": float(np.mean([s.reward for s in epoch_scored])) if epoch_scored else 0.0}
        history.usage += CallStats.of(epoch_scored)
        if validation:
            val = await evaluate(program.with_states(states), validation, reward, concurrency=concurrency,
                                 label=f"val {epoch}", progress=progress)
            logs["val_reward"] = val.reward
            history.usage += val.usage
        history.log(logs)
        current = logs.get(monitor)
        if current is not None and (best is None or _better(current, best, mode)):
            best, best_states, history.best_epoch = current, states, epoch
        if on_epoch_end:
            on_epoch_end(epoch, logs, states)
    return program.with_states(best_states), history
