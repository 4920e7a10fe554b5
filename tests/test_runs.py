"""`runs N`: N different test evaluations (each run sends its own seed), refused at
temperature 0; every metric keeps one value per run in the artifact, the runs plot and the
report, and the per-label precision, recall and F1 are shown."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import icldsl
from icldsl import report
from icldsl.cli import tables
from icldsl.language.compiler import compile_file, compile_source
from icldsl.language.diagnostics import CheckError
from icldsl.lm.base import LMRequest
from icldsl.language.source import Source
from icldsl.training.training_record import ScoreRecord
from tests.scripted import ScriptedLM

LABELS = ("positive", "negative", "neutral")
PROGRAM = """
model Review {{ text: str "A review" }}
model Sentiment {{ label: enum("positive", "negative", "neutral") "How it feels" }}
lm classifier = "openai/x" {{ {options} }}
program sentiment {{ input review: Review  label = decide Sentiment from review  output label }}
data reviews = jsonl("rows.jsonl", test: "test.jsonl")
train sentiment on reviews {{
    reward exact_match()
    optimizer random_few_shot()
    runs 3
}}
"""


def compiled_with(tmp_path: Path, options: str):
    rows = [{"text": f"review {i}", "label": LABELS[i % 3]} for i in range(12)]
    (tmp_path / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows[:8]) + "\n", encoding="utf-8")
    (tmp_path / "test.jsonl").write_text("\n".join(json.dumps(r) for r in rows[8:]) + "\n", encoding="utf-8")
    (tmp_path / "s.icl").write_text(PROGRAM.format(options=options), encoding="utf-8")
    return compile_file(tmp_path / "s.icl")


def test_runs_at_temperature_0_is_refused_by_the_checker() -> None:
    with pytest.raises(CheckError) as caught:
        compile_source(Source("s.icl", PROGRAM.format(options="temperature: 0.0")))
    [d] = caught.value.diagnostics
    assert d.code == "invalid-value" and d.message.startswith("`runs 3` would repeat one evaluation")
    assert d.span.line == 10 and "temperature above 0" in d.help


@pytest.mark.parametrize("options", ["temperature: 0.7", "", "temperature: 0.7, seed: 5"])
def test_runs_sample_with_a_seed_each_and_keep_every_metric_per_run(tmp_path: Path, options: str) -> None:
    compiled = compiled_with(tmp_path, options)
    base = 5 if "seed" in options else 0

    def answer(request: LMRequest) -> dict:
        text = json.loads(request.messages[-1].content)["text"]
        return {"label": LABELS[(int(text.split()[1]) + (request.seed or 0)) % 3]}

    lm = ScriptedLM(answer)
    report_ = icldsl.fit(compiled, clients={"classifier": lm}, write=False, report=False).report
    # The trained test runs are the last 3 x 4 requests, one after the other: one seed per run
    # (the first run sends the LM's own seed, none when it has none).
    first = 5 if "seed" in options else None
    assert [r.seed for r in lm.requests[-12:]] == [first] * 4 + [base + 1] * 4 + [base + 2] * 4

    scores = report_.artifact["training"]["scores"]["trained"]
    assert len(scores["rewards"]) == 3 and len(set(scores["rewards"])) > 1  # the runs differ
    means = [k.removesuffix("_mean") for k in scores if k.endswith("_mean")]
    assert {"reward", "accuracy", "failures", "calls", "tokens", "f1_label"} <= set(means)
    for name in means:
        if name != "reward":
            assert len(scores[f"{name}_runs"]) == 3
    assert len(scores["labels"]) == 3
    drawn = ScoreRecord.from_json(scores).stats  # what the runs plot and the report's per-run table read
    assert all(len(stat.runs) == 3 for stat in drawn.values()) and set(drawn) == set(means)

    table = tables.labels_table([("untrained", report_.untrained), ("trained", report_.trained)])
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["per", "label"] and len(lines) == 1 + len(LABELS)
    assert lines[1].startswith("label=positive")
    html = report.build(report_.artifact)
    assert 'data-table="per-label"' in html and "label = neutral" in html
