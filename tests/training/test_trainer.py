"""The trainer against a scripted in-process LM."""

from __future__ import annotations

import asyncio
from collections import Counter

import numpy as np
import pytest

from icldsl.language.compiler import compile_source
from icldsl.datasets import Example
from icldsl.lm.base import LMError
from icldsl.runtime.program import Program
from icldsl.language.source import Source
from icldsl.training.chain import Chain
from icldsl.training.context import Optimizer
from icldsl.training.nearest import NearestFewShot
from icldsl.training.optimizers import BootstrapFewShot, LabeledFewShot, RandomFewShot
from icldsl.language.catalogue.training import OPTIMIZERS
from icldsl.training.rewards import exact_match
from icldsl.training.trainer import Schedule, evaluate, fit, score
from icldsl.runtime.state import spec_and_states
from tests.scripted import ScriptedLM, last_input

SOURCE = """
model Q { question: str "A question" }
model A { thinking: str "Reasoning"  answer: float "The number" }
lm solver = "local/smollm2-135m"
program p { input q: Q  a = generate A from q  output a }
"""
PATH = "p/a"


def make_program(lm: ScriptedLM) -> Program:
    spec, states = spec_and_states(compile_source(Source("t.icl", SOURCE)), "p")
    return Program(spec, states, {"solver": lm})


def examples(n: int) -> list[Example]:
    return [Example({"question": f"q{i}"}, {"thinking": "", "answer": float(i)}, f"data.jsonl:{i + 1}")
            for i in range(n)]


def number(request) -> int:
    return int(last_input(request)["question"][1:])


reward = exact_match(in_mask=["answer"])


def test_rewards_follow_their_predictions_when_calls_finish_out_of_order() -> None:
    # Later examples answer first; even ones are right, odd ones wrong.
    lm = ScriptedLM(
        lambda r: {"thinking": "t", "answer": number(r) if number(r) % 2 == 0 else -1},
        delay=lambda r: 0.002 * (20 - number(r)),
    )
    data = examples(20)
    scored = asyncio.run(score(make_program(lm), data, reward, concurrency=20))
    assert [s.example.origin for s in scored] == [e.origin for e in data]
    for i, s in enumerate(scored):
        assert s.trace.steps[PATH].inputs == {"question": f"q{i}"}
        assert s.reward == (1.0 if i % 2 == 0 else 0.0)


def test_failures_are_counted_with_reward_zero_never_raised() -> None:
    answers = {
        0: {"thinking": "t", "answer": 0},  # right
        1: LMError("server said no"),
        2: "not json at all",
        3: {"thinking": "t", "answer": "many"},  # wrong type
        4: {"thinking": "t"},  # missing field
        5: 'Sure! ```json\n{"thinking": "t", "answer": 5}\n```',  # prose around the object
    }
    lm = ScriptedLM(lambda r: answers[number(r)])
    result = asyncio.run(evaluate(make_program(lm), examples(6), reward))
    assert [s.reward for s in result.scored] == [1.0, 0.0, 0.0, 0.0, 0.0, 1.0]
    assert result.failures == 4
    assert result.reward == pytest.approx(2 / 6)
    errors = [s.trace.steps[PATH].error for s in result.scored]
    assert "server said no" in errors[1]
    assert "not JSON" in errors[2]
    assert "answer" in errors[3] and "answer" in errors[4]
    # 6 calls, plus one retry showing the error for each of the 3 refused answers
    assert result.usage.calls == 9 and result.usage.failures == 4


def right_only_with_examples(request) -> dict:
    has_examples = len(request.messages) > 2
    return {"thinking": "t", "answer": number(request) if has_examples else -1}


def test_fit_learns_keeps_the_best_epoch_and_logs_keras_keys() -> None:
    lm = ScriptedLM(right_only_with_examples)
    program = make_program(lm)
    trained, history = asyncio.run(fit(
        program, examples(12), examples(4), reward, RandomFewShot(nb_max_examples=2),
        epochs=2, batch_size=4, rng=np.random.default_rng(0),
    ))
    assert set(history.history) == {"reward", "val_reward"}
    assert len(history.history["reward"]) == 2
    assert history.initial_val_reward == 0.0
    assert history.history["val_reward"] == [1.0, 1.0]
    assert history.best_epoch == 1
    # The first batch has no examples yet, later batches do.
    assert 0.0 < history.history["reward"][0] < 1.0
    assert trained.states[PATH].examples and not program.states[PATH].examples
    assert history.usage.calls == 4 + 2 * (12 + 4)


def test_fit_keeps_the_untrained_program_when_no_epoch_beats_it() -> None:
    lm = ScriptedLM(lambda r: {"thinking": "t", "answer": -1 if len(r.messages) > 2 else number(r)})
    program = make_program(lm)
    trained, history = asyncio.run(fit(
        program, examples(8), examples(4), reward, RandomFewShot(),
        epochs=2, batch_size=4, rng=np.random.default_rng(0),
    ))
    assert history.initial_val_reward == 1.0
    assert history.best_epoch == 0
    assert trained.states == program.states


def test_fit_is_reproducible_with_the_same_seed() -> None:
    def run(seed: int):
        lm = ScriptedLM(lambda r: {"thinking": "t", "answer": number(r) if number(r) % 3 else -1})
        trained, _ = asyncio.run(fit(
            make_program(lm), examples(12), examples(3), reward, RandomFewShot(nb_max_examples=3),
            epochs=2, batch_size=5, rng=np.random.default_rng(seed), monitor="reward",
        ))
        return [d.origin for d in trained.states[PATH].examples]

    assert run(1) == run(1)
    assert len({tuple(run(s)) for s in range(6)}) > 1


def test_progress_reports_start_and_end_of_every_pass() -> None:
    calls: list[tuple[str, int, int]] = []
    lm = ScriptedLM(right_only_with_examples)
    asyncio.run(fit(
        make_program(lm), examples(6), examples(2), reward, RandomFewShot(),
        epochs=1, batch_size=3, rng=np.random.default_rng(0),
        progress=lambda label, done, total, r, cache_hits=0: calls.append((label, done, total)),
    ))
    labels = list(dict.fromkeys(label for label, _, _ in calls))
    assert labels == ["val 0", "epoch 1", "val 1"]
    for label in labels:
        mine = [(done, total) for lab, done, total in calls if lab == label]
        assert mine[0][0] == 0 and mine[-1][0] == mine[-1][1]


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_registered_optimizer_subclasses_the_base_class(name: str) -> None:
    made = OPTIMIZERS[name].make
    assert isinstance(made, type) and issubclass(made, Optimizer)
    assert not made.__abstractmethods__  # it proposes: the one method the base leaves to it
    assert issubclass(Chain, Optimizer)


def right(request) -> dict:
    return {"thinking": "t", "answer": number(request)}


@pytest.mark.parametrize("optimizer, monitor", [
    (RandomFewShot(nb_max_examples=2), "val_reward"),
    (BootstrapFewShot(candidates=3, compare_on=30), "val_reward"),
    (LabeledFewShot(candidates=3), "val_reward"),  # learns from the data alone: no training runs
    (LabeledFewShot(candidates=2), "reward"),  # ...unless a training metric is monitored
    (NearestFewShot(k=(2, 4)), "val_reward"),
    (Chain((RandomFewShot(), LabeledFewShot(candidates=2))), "val_reward"),
], ids=["random", "bootstrap", "labeled", "labeled-monitoring-reward", "nearest", "chain"])
def test_the_schedule_is_what_fit_runs(optimizer: Optimizer, monitor: str) -> None:
    """Every LM call of a fit, put down to the pass that made it (the progress label it runs
    under), matches the trainer's Schedule stage by stage: what `icldsl plan` shows."""
    running: list[str] = []
    made: list[tuple[str, bool]] = []  # each call's pass, and whether its prompt held few-shot examples

    def answer(request) -> dict:
        made.append((running[-1], len(request.messages) > 2))
        return right(request)

    program = make_program(ScriptedLM(answer))
    train, validation = examples(20), examples(6)
    _, history = asyncio.run(fit(
        program, train, validation, reward, optimizer, epochs=2, batch_size=8, rng=np.random.default_rng(3),
        monitor=monitor, progress=lambda label, done, total, r, cache_hits=0: running.append(label)))
    schedule = Schedule.of(optimizer, program, train, validation, epochs=2, batch_size=8, monitor=monitor)

    stages = schedule.stages(1)
    passes = Counter(("validation" if label.startswith("val ") else "training", int(label.split()[-1]))
                     if label.startswith(("val ", "epoch ")) else "optimizer" for label, _ in made)
    assert {key: n for key, n in passes.items() if key != "optimizer"} == \
        {(s.kind, s.epoch): s.calls for s in stages if s.kind != "optimizer"}
    assert passes["optimizer"] == sum(s.calls for s in stages if s.kind == "optimizer")
    assert len(made) == history.usage.calls
    assert schedule.trains == any(key[0] == "training" for key in passes if key != "optimizer")
    if isinstance(optimizer, RandomFewShot):  # it proposes after every batch: only the first runs untrained
        first = next(s for s in stages if s.kind == "training" and s.epoch == 1)
        assert sum(held for label, held in made if label == "epoch 1") == first.trained == 20 - 8
