"""Dataset fingerprints, duplicated rows and test examples leaked from training."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

import icldsl
from icldsl.language.compiler import compile_source
from icldsl.datasets import Dataset, Example
from icldsl.datasets.quality import fingerprint, inspect
from icldsl.language.source import Source
from tests.scripted import ScriptedLM, last_input


def ex(question: str, answer: float, origin: str) -> Example:
    return Example({"question": question}, {"answer": answer}, origin)


def test_fingerprint_follows_content_not_origin() -> None:
    a = [ex("1+1", 2, "a.jsonl:1"), ex("2+2", 4, "a.jsonl:2")]
    moved = [ex("1+1", 2, "elsewhere/b.jsonl:7"), ex("2+2", 4, "b.jsonl:9")]
    assert fingerprint(a) == fingerprint(moved)
    assert len(fingerprint(a)) == 64
    assert fingerprint(a) != fingerprint([ex("1+1", 3, "a.jsonl:1"), ex("2+2", 4, "a.jsonl:2")])  # a label
    assert fingerprint(a) != fingerprint(a[::-1])  # order matters: it decides splits and batches
    assert fingerprint(a) != fingerprint(a[:1])
    assert fingerprint([]) == fingerprint(())


def test_clean_data_has_no_warnings() -> None:
    data = Dataset("d", (ex("1+1", 2, "t:1"), ex("2+2", 4, "t:2")), (ex("3+3", 6, "s:1"),))
    check = inspect(data)
    assert check.warnings() == []
    assert check.to_json() == {
        "fingerprint": {"train": fingerprint(data.train), "test": fingerprint(data.test)},
        "rows": {"train": 2, "test": 1},
        "duplicates": {"train": 0, "test": 0},
        "leaks": 0,
        "warnings": [],
    }


def test_leaks_ignore_case_and_spacing_and_name_both_rows() -> None:
    train = (ex("What is 1+1?", 2, "train.jsonl:1"), ex("Big  question", 9, "train.jsonl:2"))
    test = (ex("what is  1+1? ", 2, "test.jsonl:1"), ex("new", 1, "test.jsonl:2"),
            ex("BIG question", 5, "test.jsonl:3"))
    check = inspect(Dataset("sums", train, test))
    assert check.leaks == (("test.jsonl:1", "train.jsonl:1"), ("test.jsonl:3", "train.jsonl:2"))
    (warning,) = check.warnings()
    assert warning == ("data `sums`: 2 of 3 test examples also occur among the training examples, so the test "
                       "score overstates the program (test.jsonl:1 = train.jsonl:1, test.jsonl:3 = train.jsonl:2)")


def test_duplicates_within_a_split_are_grouped_and_counted() -> None:
    train = tuple(ex(q, 1, f"t:{i}") for i, q in enumerate(["a", "b", "A", "c", "b", "a"], start=1))
    check = inspect(Dataset("d", train, ()))
    assert check.duplicates["train"] == (("t:1", "t:3", "t:6"), ("t:2", "t:5"))
    assert check.warnings() == ["data `d`: 3 duplicated train rows (the same input): t:1 = t:3 = t:6; t:2 = t:5"]
    assert check.to_json()["duplicates"] == {"train": 3, "test": 0}


def test_long_lists_are_cut_short() -> None:
    train = tuple(ex(f"q{i}", i, f"t:{i}") for i in range(10))
    test = tuple(ex(f"q{i}", i, f"s:{i}") for i in range(6))
    (warning,) = inspect(Dataset("d", train, test)).warnings()
    assert warning.endswith("(s:0 = t:0, s:1 = t:1, s:2 = t:2 and 3 more)")
    assert warning.startswith("data `d`: 6 of 6 test examples")


SOURCE = """
model Q {{ question: str "q" }}
model A {{ answer: float "a" }}
lm m = "openai/x" {{ base_url: "http://127.0.0.1:9/v1" }}
program p {{ input q: Q  a = generate A from q  output a }}
data sums = jsonl("{data}", split: 0.5)
train p on sums {{ reward exact_match() optimizer random_few_shot() validation_split 0.25 }}
"""


def test_fit_records_fingerprints_and_logs_leakage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    rows = [{"question": f"{i}+{i}", "answer": 2 * i} for i in range(8)] * 2  # every row twice
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    compiled = compile_source(Source(str(tmp_path / "p.icl"), SOURCE.format(data="d.jsonl")))
    lm = ScriptedLM(lambda r: {"answer": sum(map(float, last_input(r)["question"].split("+")))})
    with caplog.at_level(logging.WARNING):
        report = icldsl.fit(compiled, clients={"m": lm}, write=False, report=False).report
    data = report.artifact["training"]["data"]
    assert set(data["fingerprint"]) == {"train", "test"} and data["rows"] == {"train": 8, "test": 8}
    assert data["leaks"] > 0 and data["warnings"]
    assert any("test examples also occur among the training examples" in r.getMessage() for r in caplog.records)
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == data["warnings"]
