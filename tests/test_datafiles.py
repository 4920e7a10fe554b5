"""`check` opens each data block's files: a missing file, or a column the program's fields cannot
find, is a diagnostic at its place in the .icl file, with the fix that mends it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from icldsl.datafiles import check_data_files
from icldsl.language.compiler import compile_source
from icldsl.datasets.peek import PEEK_BYTES
from icldsl.language.diagnostics import CheckError, Diagnostic
from icldsl.language.source import Source

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """model Review {{ txt: str  stars: int? }}
model Verdict {{ label: enum("positive", "negative") }}
lm judge = "local/smollm2-135m"
program classify {{ input r: Review  v = generate Verdict from r  output v }}
data reviews = {data}
train classify on reviews {{ reward exact_match() optimizer random_few_shot() }}
"""


def diagnostics(folder: Path, data: str) -> tuple[str, list[Diagnostic]]:
    text = PROGRAM.format(data=data)
    try:
        return text, list(compile_source(Source(str(folder / "p.icl"), text), checks=(check_data_files,)).warnings)
    except CheckError as exc:
        return text, list(exc.diagnostics)


def fixed(text: str, d: Diagnostic) -> str:
    start, end = d.fix.locate(text)
    return text[:start] + d.fix.new + text[end:]


def recheck(folder: Path, text: str) -> list[Diagnostic]:
    try:
        return list(compile_source(Source(str(folder / "p.icl"), text), checks=(check_data_files,)).warnings)
    except CheckError as exc:
        return list(exc.diagnostics)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reviews.csv").write_text("text,label\nnice,positive\n", encoding="utf-8")
    return tmp_path


def test_a_column_the_field_lacks_gets_the_map_that_names_it(folder: Path) -> None:
    text, [d] = diagnostics(folder, 'csv("data/reviews.csv")')
    assert (d.code, d.severity) == ("data-mismatch", "error")
    assert d.message == "`data/reviews.csv` has no column `txt` for the program's input field `Review.txt`"
    assert d.span.line == 5 and d.label == "columns: label, text"
    assert d.help == 'add map: { txt: "text" }'
    mended = fixed(text, d)
    assert 'csv("data/reviews.csv", map: { txt: "text" })' in mended
    assert recheck(folder, mended) == []


def test_the_fix_adds_to_a_map_already_there(folder: Path) -> None:
    (folder / "data" / "reviews.csv").write_text("text,stars,verdict\nnice,5,positive\n", encoding="utf-8")
    text, [d] = diagnostics(folder, 'csv("data/reviews.csv", map: { label: "verdict" })')
    assert d.help == 'add map: { txt: "text" }'
    assert recheck(folder, fixed(text, d)) == []
    (folder / "data" / "reviews.csv").write_text("text,label\nnice,positive\n", encoding="utf-8")
    text, [d] = diagnostics(folder, 'csv("data/reviews.csv", map: {})')
    assert 'map: { txt: "text" }' in fixed(text, d) and recheck(folder, fixed(text, d)) == []


def test_a_mapped_column_that_is_not_there_gets_the_nearest(folder: Path) -> None:
    text, [d] = diagnostics(folder, 'csv("data/reviews.csv", map: { txt: "txet" })')
    assert d.message == "`data/reviews.csv` has no column `txet` (mapped to `txt`)"
    assert d.help == "did you mean `text`?"
    assert recheck(folder, fixed(text, d)) == []


def test_a_missing_file_gets_the_nearest_name_in_its_folder(folder: Path) -> None:
    text, [d] = diagnostics(folder, 'csv("data/review.csv", map: { txt: "text" })')
    assert (d.code, d.severity) == ("missing-data", "error")
    assert d.message == "data `reviews` reads `data/review.csv`, but there is no such file"
    assert d.help == "did you mean `data/reviews.csv`?" and d.span.column == text.splitlines()[4].index('"') + 1
    assert recheck(folder, fixed(text, d)) == []


def test_a_missing_folder_is_a_warning_and_no_data_opens_nothing(folder: Path) -> None:
    (folder / "p.icl").write_text(PROGRAM.format(data='csv("later/reviews.csv")'), encoding="utf-8")
    _, [d] = diagnostics(folder, 'csv("later/reviews.csv")')
    assert (d.code, d.severity) == ("missing-data-folder", "warning")
    assert "its folder `later` does not exist" in d.message and "--no-data" in d.help
    cli = [sys.executable, "-m", "icldsl", "check", "--format", "json", str(folder / "p.icl")]
    env = {"PYTHONPATH": str(ROOT), "PATH": ""}
    shown = json.loads(subprocess.run(cli, capture_output=True, text=True, env=env, check=True).stdout)
    assert [x["code"] for x in shown["files"][0]["diagnostics"]] == ["missing-data-folder"]
    quiet = json.loads(subprocess.run([*cli, "--no-data"], capture_output=True, text=True, env=env, check=True).stdout)
    assert quiet["files"][0]["diagnostics"] == []


def test_a_folder_named_as_the_file_and_a_builtin_loaders_path(folder: Path) -> None:
    _, [d] = diagnostics(folder, 'csv("data", map: { txt: "text" })')
    assert d.code == "missing-data" and d.message.endswith("which is a folder, not a file")
    text = PROGRAM.format(data='csv("data/reviews.csv", map: { txt: "text" })')
    text += 'data more = clinc150(path: "clinc")\n'
    [d] = recheck(folder, text)
    assert d.message == "data `more` reads `clinc`, but there is no such folder"


def test_jsonl_first_rows_name_the_columns_and_optional_fields_may_lack_one(folder: Path) -> None:
    rows = [{"txt": "nice", "label": "positive"}] * 3
    (folder / "data" / "r.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert diagnostics(folder, 'jsonl("data/r.jsonl")')[1] == []  # `stars` is optional
    (folder / "data" / "r.jsonl").write_text(json.dumps({"text": "nice", "label": "positive"}) + "\n")
    _, [d] = diagnostics(folder, 'jsonl("data/r.jsonl")')
    assert d.help == 'add map: { txt: "text" }'
    (folder / "data" / "r.json").write_text(json.dumps({"rows": [{"text": "x", "label": "negative"}]}))
    _, [d] = diagnostics(folder, 'json("data/r.json", key: "rows")')
    assert d.help == 'add map: { txt: "text" }'


def test_only_the_head_of_a_big_file_is_read(folder: Path) -> None:
    row = json.dumps({"txt": "nice", "label": "positive"}) + "\n"
    head = row * (PEEK_BYTES // len(row) + 10)
    (folder / "data" / "big.jsonl").write_text(head + "not JSON, and no column\n", encoding="utf-8")
    assert diagnostics(folder, 'jsonl("data/big.jsonl")')[1] == []  # loading reports the bad line
