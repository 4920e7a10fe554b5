"""The command line, end to end, with a real OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icldsl import artifact
from icldsl.cli import main, tables

ROOT = Path(__file__).resolve().parents[2]
GSM8K_ICL = ROOT / "programs" / "gsm8k.icl"


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "icldsl", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=120)


@pytest.mark.parametrize("verb", ["check", "fit", "eval", "run"])
def test_every_verb_has_help(verb: str) -> None:
    result = run_cli(verb, "--help")
    assert result.returncode == 0
    assert f"usage: icldsl {verb}" in result.stdout


def test_check_accepts_the_example_programs(capsys: pytest.CaptureFixture) -> None:
    assert main(["check", *map(str, sorted((ROOT / "programs").glob("*.icl")))]) == 0
    assert "gsm8k.icl: ok" in capsys.readouterr().err


def test_a_misspelled_mask_field_exits_1_naming_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "gsm8k.icl"
    text = GSM8K_ICL.read_text(encoding="utf-8")
    bad.write_text(text.replace('in_mask: ["answer"]', 'in_mask: ["anwser"]'), encoding="utf-8")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "in_mask" in l)
    col = text.splitlines()[line - 1].index('["answer"]') + 2
    result = run_cli("check", str(bad))
    assert result.returncode == 1
    assert f"{bad}:{line}:{col}" in result.stderr
    assert "did you mean `answer`?" in result.stderr
    assert "Traceback" not in result.stderr
    concise = run_cli("check", "--format", "concise", str(bad))
    assert concise.stderr.splitlines()[0].startswith(f"{bad}:{line}:{col}: error[unknown-field]")


def test_check_json_reports_every_file_even_after_one_with_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.icl"
    bad.write_text(GSM8K_ICL.read_text(encoding="utf-8").replace('"answer"]', '"anwser"]'), encoding="utf-8")
    result = run_cli("check", "--format", "json", str(bad), str(GSM8K_ICL))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["version"] == 1 and report["ok"] is False
    assert [(f["file"], f["ok"], f["errors"]) for f in report["files"]] == [(str(bad), False, 1), (str(GSM8K_ICL), True, 0)]
    (d,) = report["files"][0]["diagnostics"]
    assert d["code"] == "unknown-field" and d["help"] == "did you mean `answer`?"
    assert d["end"]["column"] - d["start"]["column"] == len('"anwser"')
    ok = run_cli("check", "--format", "json", str(GSM8K_ICL))
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"] is True


def test_check_github_prints_one_annotation_per_diagnostic(tmp_path: Path) -> None:
    bad = tmp_path / "bad.icl"
    bad.write_text("model A {\n    x: strr\n}\n", encoding="utf-8")
    result = run_cli("check", "--format", "github", str(bad))
    assert result.returncode == 1
    assert result.stdout.splitlines() == [  # errors first
        f"::error file={bad},line=2,col=8,endLine=2,endColumn=12,title=icldsl undefined-name::"
        "unknown type `strr`%0Ahelp: did you mean `str`?",
        f"::warning file={bad},line=1,col=7,endLine=1,endColumn=8,title=icldsl unused-name::"
        "model `A` is never used%0Ahelp: remove it, or use it in a program",
    ]


@pytest.mark.parametrize("content", [b"\xff\xfe\x00garbage{{{", b"model {", b"train x on y { epochs }" * 50])
def test_garbage_gives_diagnostics_not_a_traceback(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.icl"
    path.write_bytes(content)
    result = run_cli("check", str(path))
    assert result.returncode == 1
    assert "error[" in result.stderr and "Traceback" not in result.stderr


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_cli("check", str(tmp_path / "none.icl"))
    assert result.returncode == 1
    assert "cannot read" in result.stderr and "Traceback" not in result.stderr




def test_fit_trains_writes_an_artifact_that_run_and_eval_use(project, monkeypatch, capsys) -> None:
    tmp_path, server = project
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "adder.icl", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "9 train, 3 validation, 4 test examples" in out
    reward_line = next(line for line in out.splitlines() if line.startswith("reward"))
    assert reward_line.split()[1:] == ["0.000", "1.000"]
    doc = artifact.read(tmp_path / "adder.artifact.json")
    assert doc["training"]["scores"]["trained"]["reward_mean"] == 1.0
    assert doc["training"]["best_epoch"] == 1
    learned = doc["states"]["adder/total"]["examples"]
    assert learned and all(e["origin"].startswith("sums:train.jsonl:") for e in learned)  # from the train file
    assert not any(str(tmp_path) in e["origin"] for e in learned)  # no folder of this machine

    assert main(["run", "adder.artifact.json", "--input", '{"question": "20+22"}']) == 0
    assert json.loads(capsys.readouterr().out) == {"answer": 42.0}

    assert main(["eval", "adder.icl", "--artifact", "adder.artifact.json", "--quiet"]) == 0
    assert "1.000" in capsys.readouterr().out
    assert main(["eval", "adder.icl", "--quiet"]) == 0
    assert "0.000" in capsys.readouterr().out


def test_load_in_python_gives_a_validated_object(project, monkeypatch) -> None:
    tmp_path, _ = project
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "adder.icl", "--quiet", "-o", "out/adder.json"]) == 0
    script = ("import icldsl; p = icldsl.load('out/adder.json'); r = p(question='2+3'); "
              "print(type(r).__name__, repr(r.answer))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Total", "5.0"]


def test_run_reports_a_tampered_artifact(project, monkeypatch, capsys) -> None:
    tmp_path, _ = project
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "adder.icl", "--quiet"]) == 0
    path = tmp_path / "adder.artifact.json"
    path.write_text(path.read_text().replace('"Their sum"', '"Their product"'))
    capsys.readouterr()
    assert main(["run", str(path), "--input", '{"question": "1+1"}']) == 1
    assert "modified" in capsys.readouterr().err


def test_bad_data_row_names_its_file_and_line(project, monkeypatch, capsys) -> None:
    tmp_path, server = project
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "train.jsonl", "a") as f:
        f.write('{"question": "1+1", "answer": "two"}\n')
    assert main(["fit", "adder.icl", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert f"train.jsonl:13" in err and "answer" in err
    assert server.requests == []  # no LM call before the data was validated


def test_render_shows_every_step_without_an_lm(capsys) -> None:
    assert main(["render", str(ROOT / "programs" / "support.icl"), "--input", '{"text": "My card was charged twice"}']) == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if line.startswith("=== ")]
    assert [h.split(":")[0] for h in headers] == [
        "=== support/route", "=== support/answer.billing", "=== support/answer.technical", "=== support/answer.default"]
    assert '{"text": "My card was charged twice", "customer": null, "team": "<route.team>", "urgent": "<route.urgent>"}' in out
    assert "Answer as the billing team." in out and '"thinking"' in out


def test_render_uses_an_artifacts_examples(project, monkeypatch, capsys) -> None:
    tmp_path, _ = project
    monkeypatch.chdir(tmp_path)
    assert main(["fit", "adder.icl", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["render", "adder.icl", "--artifact", "adder.artifact.json", "--input", '{"question": "1+2"}']) == 0
    out = capsys.readouterr().out
    assert out.count("--- assistant") >= 1 and out.count("--- user") >= 2


def test_diagnostics_point_into_imported_files(tmp_path: Path) -> None:
    (tmp_path / "shared.icl").write_text("model Q { question: strr }\n")
    (tmp_path / "main.icl").write_text('import "shared.icl"\nmodel A { a: str }\nlm m = "local/smollm2-135m"\n'
                                       "program p { input q: Q  a = generate A from q  output a }\n")
    result = run_cli("check", str(tmp_path / "main.icl"))
    assert result.returncode == 1
    assert "shared.icl:1:21" in result.stderr and "model Q { question: strr }" in result.stderr


def test_fit_prints_each_optimizer_comparison_with_its_spread() -> None:
    events = [
        {"epoch": 1, "optimizer": "bootstrap_few_shot", "kept": True,
         "difference": {"mean": 0.125, "std": 0.3, "n": 40, "stderr": 0.047}},
        {"epoch": 2, "optimizer": "omega", "kept": 0, "incumbent": 0,
         "difference": {"mean": 0.0, "std": 0.0, "n": 40, "stderr": 0.0}},
        {"epoch": 2, "optimizer": "labeled_few_shot", "kept": False, "reason": "no candidate differs"},
    ]
    assert tables.event_lines(events) == [
        "  epoch 1 bootstrap_few_shot: best candidate +0.125 ± 0.047 against the current states (paired, n=40): "
        "switched",
        "  epoch 2 omega: best candidate +0.000 ± 0.000 against the current states (paired, n=40): "
        "kept the current states",
        "  epoch 2 labeled_few_shot: no candidate differs",
        "  (every comparison is in the artifact: training.optimizer_events)",
    ]
    assert tables.event_lines([]) == []
