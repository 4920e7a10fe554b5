"""End to end on the real bundled model: `icldsl fit` on a handful of GSM8K examples,
then the artifact loaded and run without the source."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icldsl import artifact
from icldsl.cli import main

pytestmark = pytest.mark.local_model
pytest.importorskip("llama_cpp", reason="needs the local extra: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parents[1]


def small_gsm8k(tmp_path: Path) -> Path:
    text = (ROOT / "programs" / "gsm8k.icl").read_text(encoding="utf-8")
    for old, new in [("train_limit: 30, test_limit: 30", "train_limit: 5, test_limit: 2"),
                     ("max_tokens: 200", "max_tokens: 80"), ("epochs     2", "epochs     1")]:
        assert old in text, f"programs/gsm8k.icl no longer has {old!r}; update this test"
        text = text.replace(old, new)
    path = tmp_path / "gsm8k.icl"
    path.write_text(text, encoding="utf-8")
    return path


def test_fit_then_run_on_the_local_model(tmp_path, gsm8k_dir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ICLDSL_GSM8K_PATH", str(gsm8k_dir))
    monkeypatch.chdir(tmp_path)
    assert main(["fit", str(small_gsm8k(tmp_path)), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "4 train, 1 validation, 2 test examples" in out
    assert "wrote gsm8k_baseline.artifact.json" in out.splitlines()
    assert (tmp_path / "gsm8k_baseline.report.html").is_file()

    doc = artifact.read(tmp_path / "gsm8k_baseline.artifact.json")
    record = doc["training"]
    # 2 untrained test + 1 initial validation + 4 train + 1 validation + 2 trained test
    assert record["total_usage"]["calls"] == 10
    assert record["total_usage"]["completion_tokens"] > 0
    assert set(record["history"]) == {f"{prefix}{key}" for prefix in ("", "val_")
                                      for key in ("reward", "accuracy", "failures", "calls", "tokens")}

    # The artifact runs in a fresh process, without the .icl source.
    (tmp_path / "gsm8k.icl").unlink()
    script = ("import icldsl; p = icldsl.load('gsm8k_baseline.artifact.json'); r = p(question='What is 2 + 3?'); "
              "print(type(r.answer).__name__)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "float"


def test_run_command_prints_validated_json(tmp_path, gsm8k_dir, monkeypatch, capsys) -> None:
    monkeypatch.setenv("ICLDSL_GSM8K_PATH", str(gsm8k_dir))
    monkeypatch.chdir(tmp_path)
    text = small_gsm8k(tmp_path).read_text()
    (tmp_path / "gsm8k.icl").write_text(text.replace("train_limit: 5, test_limit: 2", "train_limit: 2, test_limit: 1"))
    assert main(["fit", "gsm8k.icl", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", "gsm8k_baseline.artifact.json", "--input", '{"question": "What is 2 + 3?"}']) == 0
    output = json.loads(capsys.readouterr().out)
    assert isinstance(output["answer"], float) and isinstance(output["thinking"], str)


def test_the_quick_start_program_learns_retrieval_and_its_artifact_repeats_it(tmp_path, clinc150_dir, monkeypatch,
                                                                             capsys) -> None:
    """programs/intents.icl on 4 queries per intent, with BM25 (the embedding model is tested elsewhere);
    half of them validate, so the switch is decided on the 30 rows a switch needs (estimate.MIN_COMPARED).
    The model generates here (2 examples per intent are too few for scoring them to beat the
    untrained program on 30 rows); tests/lm/test_local_choices.py runs the scoring path."""
    monkeypatch.setenv("ICLDSL_CLINC150_PATH", str(clinc150_dir))
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "programs" / "intents.icl").read_text(encoding="utf-8")
    for old, new in [("train_per_intent: 20, test_per_intent: 20", "train_per_intent: 4, test_per_intent: 1"),
                     ("nearest_few_shot(k: [4, 8], retriever: minilm, vote_weight: 1, compare_on: 60)",
                      "nearest_few_shot(k: 2, compare_on: 30)"),
                     ("concurrency 8", "concurrency 8\n    validation_split 0.5")]:
        assert old in text, f"programs/intents.icl no longer has {old!r}; update this test"
        text = text.replace(old, new)
    text = text.replace('embedding minilm = "local/all-minilm-l6-v2"\n', "")
    (tmp_path / "intents.icl").write_text(text, encoding="utf-8")
    assert main(["fit", "intents.icl", "--quiet", "--no-report"]) == 0
    out = capsys.readouterr().out
    assert "30 train, 30 validation, 15 test examples" in out
    doc = artifact.read(tmp_path / "banking.artifact.json")
    state = doc["states"]["banking/intent"]
    (event,) = doc["training"]["optimizer_events"]
    assert event["pools"] == {"banking/intent": {"source": "data", "size": 30, "duplicates": 0}}
    assert event["kept"], event  # every test prediction was made with the retrieved examples
    assert state["retrieval"]["k"] == 2 and len(state["retrieval"]["examples"]) == 30
    # 15 untrained test + 30 validation + (current, one candidate) x 30 + 30 validation + 15 trained test
    assert doc["training"]["total_usage"]["calls"] == 15 + 30 + 2 * 30 + 30 + 15

    # The artifact, answered only from the fit's cache, scores what the trained program scored:
    # it sends exactly the requests that were scored.
    assert main(["eval", "intents.icl", "--artifact", "banking.artifact.json", "--offline", "--quiet"]) == 0
    assert f"{doc['training']['scores']['trained']['reward_mean']:.3f}" in capsys.readouterr().out
