"""Early stopping, budgets, the CSV log, checkpoints and resuming, chained optimizers, metrics."""

from __future__ import annotations

import asyncio
import csv
import json

import numpy as np
import pytest

from icldsl.language.compiler import compile_source
from icldsl.language.source import Source
from icldsl.training.chain import Chain
from icldsl.training.checkpoint import CheckpointWriter, read_checkpoint
from icldsl.training.csvlog import CSVLog
from icldsl.training.context import Optimizer
from icldsl.training.metrics import Metrics
from icldsl.training.optimizers import RandomFewShot
from icldsl.training.session import fit_compiled
from icldsl.training.trainer import Budget, fit
from tests.scripted import ScriptedLM
from tests.training.test_trainer import PATH, examples, make_program, number, reward, right_only_with_examples


def never_right(request) -> dict:
    return {"thinking": "t", "answer": -1}


def test_early_stopping_stops_after_patience_epochs_without_improvement() -> None:
    lm = ScriptedLM(never_right)
    _, history = asyncio.run(fit(make_program(lm), examples(6), examples(2), reward, RandomFewShot(),
                                 epochs=10, batch_size=3, rng=np.random.default_rng(0), patience=2))
    assert history.epochs_run == 2
    assert "did not improve for 2 epoch(s)" in history.stopped
    assert len(lm.requests) == 2 + 2 * (6 + 2)


def test_budget_stops_cleanly_and_keeps_the_best_so_far() -> None:
    lm = ScriptedLM(right_only_with_examples)
    program = make_program(lm)
    trained, history = asyncio.run(fit(program, examples(12), examples(4), reward, RandomFewShot(nb_max_examples=2),
                                       epochs=5, batch_size=4, rng=np.random.default_rng(0),
                                       budget=Budget(calls=30)))
    # 4 initial validation calls, then epoch 1: 12 + 4 = 20 (24 in all); epoch 2 stops after its batch that
    # crosses 30 calls, before validating it.
    assert history.stopped.startswith("budget reached")
    assert history.epochs_run == 1 and history.best_epoch == 1
    assert 30 <= len(lm.requests) < 30 + 4
    assert trained.states[PATH].examples


def test_token_budget() -> None:
    lm = ScriptedLM(never_right)  # 15 tokens per call
    _, history = asyncio.run(fit(make_program(lm), examples(8), examples(2), reward, RandomFewShot(),
                                 epochs=3, batch_size=2, rng=np.random.default_rng(0), budget=Budget(tokens=100)))
    assert history.stopped.startswith("budget reached")
    assert history.usage.prompt_tokens + history.usage.completion_tokens < 100 + 2 * 15


def test_csv_log_has_one_row_per_epoch_with_every_key(tmp_path) -> None:
    lm = ScriptedLM(right_only_with_examples)
    program = make_program(lm)
    path = tmp_path / "h.csv"
    asyncio.run(fit(program, examples(6), examples(2), reward, RandomFewShot(), epochs=3, batch_size=3,
                    rng=np.random.default_rng(0), metrics=Metrics(program.spec), callbacks=[CSVLog(path)]))
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert {"reward", "accuracy", "calls", "tokens", "failures", "val_reward", "val_accuracy"} <= set(rows[0])
    assert float(rows[0]["calls"]) == 6


def interrupted_after(epochs: int):
    """An epoch-end callback that stops the fit (as Ctrl-C would) after `epochs` epochs."""
    def callback(epoch, logs, states, history):
        if epoch == epochs:
            raise KeyboardInterrupt
    return callback


def answers_by_demos(request) -> dict:
    """Right when the prompt carries examples whose questions sum to an even number: the states matter."""
    demos = [m for m in request.messages[1:-1] if m.role == "user"]
    total = sum(int(json.loads(m.content)["question"][1:]) for m in demos)
    return {"thinking": "t", "answer": number(request) if demos and total % 2 == 0 else -1}


def test_a_fit_resumed_from_its_checkpoint_ends_where_an_uninterrupted_one_does(tmp_path) -> None:
    def run(callbacks_extra=(), resume=None, path=tmp_path / "c.json"):
        lm = ScriptedLM(answers_by_demos)
        program = make_program(lm)
        rng = np.random.default_rng(3)
        writer = CheckpointWriter(path, {"id": 1}, rng, "val_reward",
                                  None if resume is None else resume.best_states())
        trained, history = asyncio.run(fit(
            program, examples(10), examples(4), reward, RandomFewShot(nb_max_examples=3), epochs=4, batch_size=5,
            rng=rng, callbacks=[writer, *callbacks_extra], resume=resume))
        return trained, history, lm

    full, full_history, _ = run(path=tmp_path / "full.json")
    with pytest.raises(KeyboardInterrupt):
        run(callbacks_extra=[interrupted_after(2)])
    program = make_program(ScriptedLM(answers_by_demos))
    resume = read_checkpoint(tmp_path / "c.json", {"id": 1}, program.states)
    assert resume is not None and resume.epoch == 2
    resumed, resumed_history, lm = run(resume=resume)
    assert resumed_history.history == full_history.history
    assert resumed_history.best_epoch == full_history.best_epoch
    assert resumed.states == full.states
    assert len(lm.requests) == 2 * (10 + 4)  # only epochs 3 and 4 ran
    assert read_checkpoint(tmp_path / "c.json", {"id": 2}, program.states) is None  # another fit's


class AddInstructions(Optimizer):
    def __init__(self, text: str) -> None:
        self.text = text

    async def propose(self, states, scored, ctx):
        return {p: s.__class__(s.instructions + self.text, s.examples, s.frozen) for p, s in states.items()}


def test_chained_optimizers_each_start_from_the_states_the_one_before_left() -> None:
    lm = ScriptedLM(never_right)
    program = make_program(lm)
    chain = Chain((RandomFewShot(nb_min_examples=1, nb_max_examples=1), AddInstructions(" A"),
                   AddInstructions(" B")))
    trained, _ = asyncio.run(fit(program, examples(4), (), reward, chain, epochs=1, batch_size=4,
                                 rng=np.random.default_rng(0), monitor="reward", mode="min"))
    state = trained.states[PATH]
    assert state.instructions.endswith(" A B") and len(state.examples) == 1


SOURCE = """
model Review { text: str "A review" }
model Sentiment { label: enum("pos", "neg") "The feeling" }
lm m = "local/smollm2-135m"
program p { input r: Review  s = decide Sentiment from r  output s }
data d = jsonl("rows.jsonl", split: 0.5, seed: 1)
train p on d {
    reward          exact_match()
    optimizer       random_few_shot(nb_max_examples: 2)
    epochs          3
    batch_size      4
    early_stopping  patience 1
    budget          { calls: 1000 }
    checkpoint      best val_f1_label max
}
"""


def test_fit_compiled_logs_metrics_and_per_label_scores(tmp_path) -> None:
    rows = [{"text": f"t{i}", "label": "pos" if i % 3 else "neg"} for i in range(16)]
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "p.icl").write_text(SOURCE)
    compiled = compile_source(Source.from_path(tmp_path / "p.icl"))
    lm = ScriptedLM(lambda r: {"label": "pos"})
    report = asyncio.run(fit_compiled(compiled, compiled.train(), clients={"m": lm},
                                      checkpoint=tmp_path / "ck.json", csv_log=tmp_path / "h.csv"))
    record = report.artifact["training"]
    assert "val_f1_label" in record["history"] and "f1_label" in record["history"]
    assert record["stopped"].startswith("early stopping")  # a constant answer never improves
    labels = record["scores"]["trained"]["labels"][0]["label"]["labels"]  # one table per run
    assert labels["neg"]["recall"] == 0.0 and labels["pos"]["recall"] == 1.0
    test_pos = report.trained.runs[0].scored
    share = sum(s.example.y["label"] == "pos" for s in test_pos) / len(test_pos)
    assert record["scores"]["untrained"]["accuracy_mean"] == pytest.approx(share)
    assert (tmp_path / "ck.json").exists() and (tmp_path / "h.csv").exists()


def gate_lm(with_examples: set[int]):
    """Right without examples on questions 0-5, and with examples on `with_examples`."""
    def answer(request) -> dict:
        n = number(request)
        shown = len(request.messages) > 2
        return {"thinking": "t", "answer": n if n in (with_examples if shown else set(range(6))) else -1}
    return answer


@pytest.mark.parametrize("with_examples, kept", [
    (set(range(2, 10)), False),  # 4 rows gained, 2 lost: +2 of 54 (0.111 -> 0.148), +0.037 ± 0.046
    (set(range(8)), True),       # 2 gained, none lost: +0.037 ± 0.026
])
def test_the_epoch_checkpoint_keeps_an_epoch_only_past_the_paired_gate(with_examples, kept) -> None:
    lm = ScriptedLM(gate_lm(with_examples))
    trained, history = asyncio.run(fit(make_program(lm), examples(12), examples(54), reward,
                                       RandomFewShot(nb_max_examples=2), epochs=1, batch_size=12,
                                       rng=np.random.default_rng(0)))
    assert history.initial["val_reward"] == pytest.approx(6 / 54)
    assert history.history["val_reward"] == [pytest.approx(8 / 54)]
    assert history.best_epoch == (1 if kept else 0)
    assert bool(trained.states[PATH].examples) is kept
    refusals = [e for e in history.events if e.get("optimizer") == "epoch checkpoint"]
    if kept:
        assert refusals == []
    else:
        (event,) = refusals
        assert event["kept"] is False and event["reason"] == (
            "val_reward 0.148 against the best 0.111: +0.037 ± 0.046 (paired, n=54) is not more than one "
            "standard error")
