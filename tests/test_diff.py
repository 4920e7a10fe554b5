"""`icldsl diff A B`: what changed between two artifacts, and diff(1)'s exit status."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

import icldsl
from icldsl import artifact
from icldsl.cli import main
from icldsl.language.compiler import compile_file
from icldsl.diff import diff_docs
from tests.adder import right_with_examples
from tests.scripted import ScriptedLM

FILE = """
model Sum { question: str "Two numbers to add, like 2+3" }
model Total { answer: float "Their sum" }
lm solver = "openai/solver" { base_url: "http://127.0.0.1:9/v1", temperature: 0.0 }
program adder { input q: Sum  total = generate Total from q instructions "Add the numbers."  output total }
data sums = jsonl("sums.jsonl", split: 0.75)
train adder on sums {
    reward exact_match()
    optimizer random_few_shot(nb_min_examples: 2, nb_max_examples: 2)
    epochs 1
    batch_size 4
}
"""
PATH = "adder/total"


def fitted(tmp_path: Path, name: str, *, replace: tuple[str, str] = ("", ""), answer=right_with_examples) -> Path:
    """The artifact of fitting FILE (with `replace` applied) against a scripted LM."""
    rows = [{"question": f"{i}+{i + 1}", "answer": 2 * i + 1} for i in range(16)]
    (tmp_path / "sums.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    source = tmp_path / f"{name}.icl"
    source.write_text(FILE.replace(*replace), encoding="utf-8")
    compiled = compile_file(source)
    return icldsl.fit(compiled, output=tmp_path / f"{name}.artifact.json", clients={"solver": ScriptedLM(answer)},
                      report=False).path


def rewritten(tmp_path: Path, doc: dict, name: str) -> Path:
    """`doc` with its content hash recomputed, written as `name`."""
    doc = {k: v for k, v in doc.items() if k != artifact.HASH_KEY}
    doc[artifact.HASH_KEY] = artifact.content_hash(doc)
    return artifact.write(tmp_path / name, doc)


def test_identical_artifacts_exit_0(tmp_path, capsys) -> None:
    a = fitted(tmp_path, "a")
    b = artifact.write(tmp_path / "b.artifact.json", artifact.read(a))
    assert main(["diff", str(a), str(b)]) == 0
    assert capsys.readouterr().out.strip() == f"{a} and {b} are identical"
    assert main(["diff", str(a), str(b), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"a": str(a), "b": str(b), "identical": True}


def test_a_changed_source_shows_instructions_settings_source_and_scores(tmp_path, capsys) -> None:
    a = fitted(tmp_path, "a")
    b = fitted(tmp_path, "b", replace=('instructions "Add the numbers."', 'instructions "Add them up."'),
               answer=lambda request: {"answer": -1.0})
    assert main(["diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"--- {a}\n+++ {b}\n")
    assert "  file: " in out and "a.icl -> " in out and "  sha256: " in out
    assert "step adder/total:\n  instructions:\n    @@ -1 +1 @@\n    -Add the numbers.\n    +Add them up.\n" in out
    assert "  examples: 2 removed\n" in out  # b learned nothing: its predictions never earned a reward
    assert "  trained    reward       1.000 ± 0.000 -> 0.000 ± 0.000  (-1.000)" in out

    assert main(["diff", str(a), str(b), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["identical"] is False
    step = doc["steps"][PATH]
    assert step["instructions"]["a"] == "Add the numbers." and step["instructions"]["b"] == "Add them up."
    assert all(e["origin"].startswith("sums:sums.jsonl:") for e in step["examples"]["removed"])
    assert doc["scores"]["trained"]["reward"] == {"a": {"mean": 1.0, "std": 0.0}, "b": {"mean": 0.0, "std": 0.0}}
    assert "settings" not in doc and "data" not in doc  # same settings and data


def test_examples_frozen_flags_and_settings_of_an_edited_document(tmp_path, capsys) -> None:
    a = fitted(tmp_path, "a")
    doc = copy.deepcopy(artifact.read(a))
    state = doc["states"][PATH]
    first, second = state["examples"]
    new = {**first, "origin": "sums:sums.jsonl:99", "reward": 0.5}
    state["examples"] = [{**second, "output": {"answer": 0.0}, "reward": 0.0}, new]
    state["frozen"] = True
    doc["training"]["train"]["epochs"] = 3
    doc["training"]["data"]["fingerprint"]["train"] = "f" * 64
    b = rewritten(tmp_path, doc, "b.artifact.json")

    result = diff_docs(artifact.read(a), artifact.read(b))
    assert result["settings"] == {"epochs": [1, 3]}
    assert result["data"] == {"fingerprint.train": [artifact.read(a)["training"]["data"]["fingerprint"]["train"],
                                                    "f" * 64]}
    step = result["steps"][PATH]
    assert step["frozen"] == [False, True] and "instructions" not in step
    assert step["examples"]["removed"] == [first] and step["examples"]["added"] == [new]
    assert step["examples"]["changed"] == [{"a": second, "b": state["examples"][0]}]
    assert "reordered" not in step["examples"]
    assert set(result) == {"identical", "data", "settings", "steps"}

    assert main(["diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out
    assert f"    - {first['origin']} reward {first['reward']:.3f}: " in out
    assert "    + sums:sums.jsonl:99 reward 0.500: " in out
    assert "output {\"answer\": " in out and "-> {\"answer\": 0.0}; reward 1.0 -> 0.0" in out
    assert "  frozen: false -> true" in out and "settings:\n  epochs: 1 -> 3" in out


def test_reordered_examples_and_a_step_in_one_artifact_only(tmp_path, capsys) -> None:
    a = fitted(tmp_path, "a")
    doc = copy.deepcopy(artifact.read(a))
    doc["states"][PATH]["examples"].reverse()
    doc["states"]["adder/other"] = doc["states"][PATH]
    b = rewritten(tmp_path, doc, "b.artifact.json")
    result = diff_docs(artifact.read(a), artifact.read(b))
    assert result["steps"] == {"adder/other": {"only_in": "b"}, PATH: {"examples": {"reordered": True}}}
    assert main(["diff", str(a), str(b)]) == 1
    assert f"step adder/other: only in {b}" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["tampered", "missing"])
def test_an_unreadable_artifact_exits_2(tmp_path, capsys, damage: str) -> None:
    a = fitted(tmp_path, "a")
    b = tmp_path / "b.artifact.json"
    if damage == "tampered":
        b.write_text(a.read_text(encoding="utf-8").replace("Add the numbers.", "Add."), encoding="utf-8")
    assert main(["diff", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and ("modified" in err if damage == "tampered" else "cannot read" in err)


def test_diff_has_help(capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["diff", "--help"])
    assert exit_.value.code == 0 and "usage: icldsl diff" in capsys.readouterr().out
