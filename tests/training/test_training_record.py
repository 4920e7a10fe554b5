"""TrainingRecord: the artifact's training section read back to the same JSON, older
artifacts' shapes read, unknown keys kept, and a wrong value refused with where it is."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import icldsl
from icldsl import artifact, plots, report
from icldsl.artifact import HASH_KEY, ArtifactError, content_hash
from icldsl.cli import main
from icldsl.diff import diff_docs
from icldsl.language.compiler import compile_source
from icldsl.language.source import Source
from icldsl.training.training_record import ScoreRecord, Stat, TrainingRecord
from icldsl.training.usage import CallStats
from tests.scripted import ScriptedLM, last_input

SOURCE = """
model Q { n: str "a number" }
model P { parity: enum("even", "odd") "whether it is even" }
lm m = "openai/x" { base_url: "http://127.0.0.1:9/v1", temperature: 0.7 }
program parity { input q: Q  p = decide P from q  output p }
data d = jsonl("d.jsonl", split: 0.7)
train parity on d {
    reward exact_match() optimizer random_few_shot(nb_max_examples: 2) epochs 2 batch_size 4 runs 2
}
"""


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The artifact of a fit with metrics, per-label tables and two test runs."""
    tmp = tmp_path_factory.mktemp("record")
    rows = [{"n": str(i), "parity": "even" if i % 2 == 0 else "odd"} for i in range(20)]
    (tmp / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    compiled = compile_source(Source(str(tmp / "parity.icl"), SOURCE))
    # Right when shown examples, except on multiples of 3; always "odd" without them.
    lm = ScriptedLM(lambda r: {"parity": "odd" if len(r.messages) <= 2 or int(last_input(r)["n"]) % 3 == 0
                               else ("even" if int(last_input(r)["n"]) % 2 == 0 else "odd")})
    return icldsl.fit(compiled, clients={"m": lm}, write=False, report=False).artifact


def test_a_fit_record_reads_back_to_the_same_json_and_bytes(fitted: dict) -> None:
    training = fitted["training"]
    record = TrainingRecord.from_json(training)
    assert record.to_json() == training
    assert artifact.canonical(record.to_json()) == artifact.canonical(training)  # key order too
    trained = record.scores["trained"]
    assert trained.reward.runs == tuple(training["scores"]["trained"]["rewards"]) and len(trained.reward.runs) == 2
    assert list(trained.metrics)[:4] == ["accuracy", "failures", "calls", "tokens"]
    assert "f1_parity" in trained.metrics and len(trained.metrics["f1_parity"].runs) == 2
    assert trained.labels is not None and len(trained.labels) == 2 and record.run_count == 2
    assert record.data is not None and record.data.sizes == training["data"]["sizes"]
    assert record.data.fingerprints == training["data"]["fingerprint"]
    assert record.trained_minus_untrained is not None and record.trained_minus_untrained.n == trained.examples
    assert record.history.initial["val_reward"] == training["initial_val_reward"]
    assert record.total_usage == CallStats.from_json(training["total_usage"]) and record.total_usage.calls > 0
    assert set(record.usage_by_step) == {"parity/p"} and not record.other


def before_per_run_metrics(doc: dict) -> dict:
    """`doc` as icldsl wrote it before every run's metrics were kept (77e52f9): metrics as
    mean and std alone, one per-label table (the last run's), and none of the sections
    added since (baselines, trained - untrained, epochs run, why training stopped)."""
    old = copy.deepcopy(doc)
    training = old["training"]
    for score in training["scores"].values():
        for key in [k for k in score if k.endswith("_runs")]:
            del score[key]
        score["labels"] = score["labels"][-1]
    for key in ("baselines", "trained_minus_untrained", "epochs_run", "stopped"):
        training.pop(key, None)
    old[HASH_KEY] = content_hash(old)
    return old


def test_an_artifact_from_before_per_run_metrics_is_read_drawn_reported_and_compared(fitted: dict) -> None:
    old = before_per_run_metrics(fitted)
    record = TrainingRecord.of_artifact(old)
    trained = record.scores["trained"]
    accuracy = fitted["training"]["scores"]["trained"]["accuracy_mean"]
    assert trained.metrics["accuracy"] == Stat(accuracy, fitted["training"]["scores"]["trained"]["accuracy_std"],
                                               (accuracy,))
    assert trained.labels == (fitted["training"]["scores"]["trained"]["labels"][-1],)
    assert record.trained_minus_untrained is None and record.baselines == ()
    assert record.history.epochs_run == len(fitted["training"]["history"]["val_reward"])
    assert record.to_json()["scores"]["trained"]["accuracy_runs"] == [accuracy]  # written in today's shape
    html = report.build(old)
    assert 'data-table="per-label"' in html and "parity = even" in html
    assert list(plots.figures(old)) == ["graph", "comparison", "runs", "history"]  # the reward still has 2 runs
    result = diff_docs(old, fitted)
    assert "scores" not in result and "trained_minus_untrained" in json.dumps(result["training"])


def test_keys_it_does_not_know_are_kept_where_they_were() -> None:
    score = {"reward_mean": 0.5, "reward_std": 0.0, "rewards": [0.5], "examples": 2, "failures": [0],
             "cascaded_share": 0.25}
    assert ScoreRecord.from_json(score).other == {"cascaded_share": 0.25}
    assert ScoreRecord.from_json(score).to_json() == score
    training = {"train": {"epochs": 1}, "scores": {"trained": score}, "calibration": {"threshold": 0.9}}
    record = TrainingRecord.from_json(training)
    assert record.other == {"calibration": {"threshold": 0.9}}
    assert record.to_json()["calibration"] == {"threshold": 0.9}
    assert TrainingRecord.from_json(None) == TrainingRecord()


@pytest.mark.parametrize(("change", "where"), [
    (lambda t: t["scores"]["trained"].update(reward_mean="high"), "training.scores.trained.reward_mean is 'high'"),
    (lambda t: t["scores"]["trained"].update(accuracy_runs=[1, None]), "training.scores.trained.accuracy_runs[1]"),
    (lambda t: t["usage_by_lm"]["m"].update(dollars=3), "training.usage_by_lm.m has `dollars`"),
    (lambda t: t.update(baselines={"vote": 1}), "training.baselines is {'vote': 1}, not a list"),
    (lambda t: t.update(history={"reward": "0.5"}), "training.history.reward is '0.5', not a list"),
])
def test_a_wrong_value_is_refused_saying_where(fitted: dict, change, where: str) -> None:
    doc = copy.deepcopy(fitted)
    change(doc["training"])
    with pytest.raises(ArtifactError, match="^x.json: " + where.replace("[", r"\[").replace("]", r"\]")
                       .replace("(", r"\(")):
        TrainingRecord.of_artifact(doc, "x.json")


def test_diff_and_plot_refuse_an_unreadable_training_record(fitted: dict, tmp_path: Path, capsys) -> None:
    good = artifact.write(tmp_path / "good.artifact.json", fitted)
    doc = copy.deepcopy(fitted)
    doc["training"]["scores"]["untrained"]["failures"] = "none"
    doc[HASH_KEY] = content_hash(doc)
    bad = artifact.write(tmp_path / "bad.artifact.json", doc)
    assert main(["diff", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: training.scores.untrained.failures is 'none', not a list")
    assert main(["plot", str(bad)]) == 1
    assert f"error: {bad}: training.scores.untrained.failures" in capsys.readouterr().err
    assert not list(tmp_path.glob("bad.*.png"))
