"""The json and csv loaders, the field -> column mapping every file loader shares, and
how bad rows are reported (all of them, with file and line, nothing half-loaded)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

import pytest
from pydantic import BaseModel

from icldsl.language.compiler import compile_source
from icldsl.datasets import DataError, load_dataset
from icldsl.datasets.files import CSV, JSON, JSONL
from icldsl.language.source import Source


class Review(BaseModel):
    text: str
    stars: int


class Verdict(BaseModel):
    label: Literal["pos", "neg"]


class Tagged(BaseModel):
    text: str
    tags: list[str]
    note: Optional[int] = None


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"text": f"review {i}", "stars": i % 5 + 1, "label": "pos" if i % 2 else "neg"}
            for i in range(start, start + n)]


def write_csv(path: Path, header: str, lines: list[str]) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
    return path


def origins(examples) -> list[str]:
    return [ex.origin for ex in examples]


# ---- json ---------------------------------------------------------------------------------------


def test_json_array_rows_keep_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(rows(3), indent=2), encoding="utf-8")
    data = JSON.load("r", {"path": "r.json", "split": 1.0}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    text = path.read_text().split("\n")
    assert [text[int(o.rsplit(":", 1)[1]) - 1] for o in origins(data.train)] == ["  {"] * 3
    assert origins(data.train) == ["r:r.json:2", "r:r.json:7", "r:r.json:12"]
    assert data.train[2].x == {"text": "review 2", "stars": 3}


def test_json_rows_under_a_nested_key_with_a_mapping(tmp_path: Path) -> None:
    doc = {"meta": {"rows": ["ignored"]}, "data": {"meta": 1, "items": [
        {"body": "great", "score": "5", "verdict": "pos"},
        {"body": "bad", "score": 1, "verdict": "neg"}]}}
    path = tmp_path / "r.json"
    path.write_text('{"meta": {"rows": ["ignored"]},\n "data": {"meta": 1,\n "items": [\n'
                    + ",\n".join(json.dumps(r) for r in doc["data"]["items"]) + "]}}", encoding="utf-8")
    assert json.loads(path.read_text()) == doc
    args = {"path": "r.json", "key": "data.items", "split": 1.0,
            "map": {"text": "body", "stars": "score", "label": "verdict"}}
    data = JSON.load("r", args, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    assert [(ex.x, ex.y) for ex in data.train] == [
        ({"text": "great", "stars": 5}, {"label": "pos"}), ({"text": "bad", "stars": 1}, {"label": "neg"})]
    assert origins(data.train) == ["r:r.json:4", "r:r.json:5"]


@pytest.mark.parametrize("content, args, message", [
    ('{"items": [], "other": {}}', {}, "expected the file to hold an array of objects, got an object; "
                                      'name the key that holds the rows with `key: "items"`'),
    ('{"items": []}', {"key": "rows"}, r"no key 'rows' in the file \(keys: items\)"),
    ('{"items": {"a": 1}}', {"key": "items.a.b"}, "no key 'items.a.b' in 'items.a'"),
    ('[{"text": "a", "stars": 1, "label": "pos"},\n 7]', {}, r"r.json:2: expected a JSON object, got a number"),
    ('[{"text": "a",\n "stars": }]', {}, r"r.json:2: invalid JSON: Expecting value"),
    ("[]", {}, "r.json: no examples"),
])
def test_json_file_problems(tmp_path: Path, content: str, args: dict, message: str) -> None:
    (tmp_path / "r.json").write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        JSON.load("r", {"path": "r.json", **args}, base_dir=tmp_path, x_model=Review, y_model=Verdict)


def test_json_with_a_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "r.json").write_text("\ufeff" + json.dumps(rows(2)), encoding="utf-8")
    data = JSON.load("r", {"path": "r.json", "split": 1.0}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    assert len(data.train) == 2


# ---- csv ----------------------------------------------------------------------------------------


def test_csv_cells_become_typed_fields(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "r.csv", "text,stars,label,extra", [
        "fine,4,pos,x", '"quoted, with comma",2,neg,y', '"two\nlines",1,neg,z'])
    data = CSV.load("r", {"path": "r.csv", "split": 1.0}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    assert [ex.x for ex in data.train] == [
        {"text": "fine", "stars": 4}, {"text": "quoted, with comma", "stars": 2}, {"text": "two\nlines", "stars": 1}]
    assert origins(data.train) == ["r:r.csv:2", "r:r.csv:3", "r:r.csv:4"]  # a row starts where its first line is


def test_csv_lists_as_json_and_empty_optional_cells(tmp_path: Path) -> None:
    write_csv(tmp_path / "t.csv", "text,tags,note,label", [
        'a,"[""x"", ""y""]",,pos', 'b,[],3,neg'])
    data = CSV.load("t", {"path": "t.csv", "split": 1.0}, base_dir=tmp_path, x_model=Tagged, y_model=Verdict)
    assert [ex.x for ex in data.train] == [{"text": "a", "tags": ["x", "y"], "note": None},
                                           {"text": "b", "tags": [], "note": 3}]


def test_tsv_and_delimiter(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.tsv", "text\tstars\tlabel", ["a, b\t3\tpos"])
    data = CSV.load("r", {"path": "r.tsv", "split": 1.0}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    assert data.train[0].x == {"text": "a, b", "stars": 3}
    write_csv(tmp_path / "r.csv", "text;stars;label", ["a;3;neg"])
    data = CSV.load("r", {"path": "r.csv", "delimiter": ";", "split": 1.0}, base_dir=tmp_path,
                    x_model=Review, y_model=Verdict)
    assert data.train[0].y == {"label": "neg"}
    with pytest.raises(DataError, match="option 'delimiter' should be one character"):
        CSV.load("r", {"path": "r.csv", "delimiter": ";;"}, base_dir=tmp_path, x_model=Review, y_model=Verdict)


def test_csv_mapping_names_columns_with_spaces(tmp_path: Path) -> None:
    write_csv(tmp_path / "r.csv", "Review Text,Stars,Sentiment", ["nice,5,pos"])
    args = {"path": "r.csv", "split": 1.0, "map": {"text": "Review Text", "stars": "Stars", "label": "Sentiment"}}
    data = CSV.load("r", args, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    assert (data.train[0].x, data.train[0].y) == ({"text": "nice", "stars": 5}, {"label": "pos"})


@pytest.mark.parametrize("header, lines, message", [
    ("text,stars,label", ["a,1,pos", "b,2"], r"r.csv:3: expected 3 cells as in the header, got 2"),
    ("text,stars,text,label", ["a,1,b,pos"], r"r.csv:1: the header names column 'text' twice"),
    ("text,,label", ["a,1,pos"], r"r.csv:1: the header has an unnamed column \(column 2\)"),
    ("text,label", ["a,pos"], r"r.csv:1: no column for input field 'stars' \(columns: label, text\); "
                              r'name one with `map: \{ stars: "column" \}`'),
    ("text,stars,label", ['"a,1,pos'], r"r.csv:2: invalid CSV"),
])
def test_csv_file_problems(tmp_path: Path, header: str, lines: list[str], message: str) -> None:
    write_csv(tmp_path / "r.csv", header, lines)
    with pytest.raises(DataError, match=message):
        CSV.load("r", {"path": "r.csv"}, base_dir=tmp_path, x_model=Review, y_model=Verdict)


def test_csv_with_only_a_header_or_nothing(tmp_path: Path) -> None:
    write_csv(tmp_path / "h.csv", "text,stars,label", [])
    with pytest.raises(DataError, match=r"h.csv: no examples$"):
        CSV.load("h", {"path": "h.csv"}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    (tmp_path / "e.csv").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"e.csv: no header line and no examples$"):
        CSV.load("e", {"path": "e.csv"}, base_dir=tmp_path, x_model=Review, y_model=Verdict)


# ---- what every file loader shares ----------------------------------------------------------------


def test_every_bad_row_is_reported_and_nothing_is_loaded(tmp_path: Path) -> None:
    lines = [f"r{i},{'many' if i in (2, 5) else i % 5 + 1},{'maybe' if i == 5 else 'pos'}" for i in range(8)]
    path = write_csv(tmp_path / "r.csv", "text,stars,label", lines)
    with pytest.raises(DataError) as info:
        CSV.load("r", {"path": "r.csv", "train_limit": 1}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    assert (info.value.file, info.value.line) == (str(path), 4)
    assert str(info.value).split("\n") == [
        f"{path}:4: input field 'stars': Input should be a valid integer, unable to parse string as an integer "
        "(got 'many')",
        f"{path}:7: input field 'stars': Input should be a valid integer, unable to parse string as an integer "
        "(got 'many')",
        "2 bad rows of 8; nothing was loaded",
    ]


def test_many_bad_rows_are_counted_past_ten(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps({"text": "t", "stars": "x", "label": "pos"}) for _ in range(25)) + "\n")
    with pytest.raises(DataError) as info:
        JSONL.load("r", {"path": "r.jsonl"}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    lines = str(info.value).split("\n")
    assert len(lines) == 12
    assert lines[9].startswith(f"{path}:10: ")
    assert lines[10:] == ["... and 15 more", "25 bad rows of 25; nothing was loaded"]


def test_mapping_in_messages_names_the_column(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"body": "x", "stars": 2, "verdict": "meh"}) + "\n", encoding="utf-8")
    args = {"path": "r.jsonl", "map": {"text": "body", "label": "verdict"}}
    with pytest.raises(DataError, match=rf"^{path}:1: output field 'label' \(column 'verdict'\): Input should be"):
        JSONL.load("r", args, base_dir=tmp_path, x_model=Review, y_model=Verdict)


@pytest.mark.parametrize("mapping, message", [
    ({"txt": "body"}, r"jsonl loader: `map` names 'txt', which is not a field of the program's input or output; "
                      r"did you mean 'text'\?"),
    ({"zzz": "body"}, r"not a field of the program's input or output \(fields: text, stars, label\)"),
    ({"text": "bdy"}, r"r.jsonl: no column 'bdy' \(mapped to field 'text'\); did you mean 'body'\?"),
])
def test_bad_mappings(tmp_path: Path, mapping: dict, message: str) -> None:
    (tmp_path / "r.jsonl").write_text(json.dumps({"body": "x", "stars": 2, "label": "pos"}) + "\n")
    with pytest.raises(DataError, match=message):
        JSONL.load("r", {"path": "r.jsonl", "map": mapping}, base_dir=tmp_path, x_model=Review, y_model=Verdict)


def test_map_option_must_map_names_to_strings(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text(json.dumps(rows(1)[0]) + "\n")
    with pytest.raises(DataError, match=r"option 'map' should map names to strings"):
        JSONL.load("r", {"path": "r.jsonl", "map": {"text": 3}}, base_dir=tmp_path, x_model=Review, y_model=Verdict)


@pytest.mark.parametrize("fmt, name", [(JSON, "r.json"), (CSV, "r.csv")])
def test_split_limits_and_test_file_work_for_every_format(tmp_path: Path, fmt, name: str) -> None:
    def write(path: Path, items: list[dict]) -> None:
        if fmt is CSV:
            write_csv(path, "text,stars,label", [f"{r['text']},{r['stars']},{r['label']}" for r in items])
        else:
            path.write_text(json.dumps(items), encoding="utf-8")

    write(tmp_path / name, rows(20))
    data = fmt.load("r", {"path": name}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    assert (len(data.train), len(data.test)) == (16, 4)
    assert data == fmt.load("r", {"path": name, "seed": 0}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    limited = fmt.load("r", {"path": name, "train_limit": 5, "test_limit": 2, "seed": 4}, base_dir=tmp_path,
                       x_model=Review, y_model=Verdict)
    assert (len(limited.train), len(limited.test)) == (5, 2)
    full = fmt.load("r", {"path": name, "seed": 4}, base_dir=tmp_path, x_model=Review, y_model=Verdict)
    assert set(origins(limited.train)) <= set(origins(full.train))
    write(tmp_path / ("test" + name[1:]), rows(3, start=50))
    separate = fmt.load("r", {"path": name, "test": "test" + name[1:]}, base_dir=tmp_path,
                        x_model=Review, y_model=Verdict)
    assert len(separate.train) == 20
    assert [ex.x["text"] for ex in separate.test] == ["review 50", "review 51", "review 52"]


def test_a_csv_data_block_with_a_map_compiles_and_loads(tmp_path: Path) -> None:
    write_csv(tmp_path / "reviews.csv", "Review,Sentiment", ["loved it,pos", "hated it,neg", "fine,pos", "meh,neg"])
    source = """
    model R { text: str "A review" }
    model V { label: enum("pos", "neg") "Its sentiment" }
    lm m = "openai/x" { base_url: "http://127.0.0.1:9/v1" }
    program p { input r: R  v = generate V from r  output v }
    data reviews = csv("reviews.csv", map: { text: "Review", label: "Sentiment" }, split: 0.5, seed: 1)
    train p on reviews { reward exact_match() optimizer random_few_shot() }
    """
    compiled = compile_source(Source(str(tmp_path / "p.icl"), source))
    spec = compiled.data["reviews"]
    assert spec.args == {"path": "reviews.csv", "map": {"text": "Review", "label": "Sentiment"}, "split": 0.5,
                         "seed": 1}
    from icldsl.runtime.models import build_models

    models = build_models(compiled.programs["p"][0].models)
    data = load_dataset("reviews", spec.loader, spec.args, base_dir=spec.base_dir, x_model=models["R"],
                        y_model=models["V"])
    assert sorted(ex.x["text"] for ex in (*data.train, *data.test)) == ["fine", "hated it", "loved it", "meh"]
    assert {ex.y["label"] for ex in data.train} <= {"pos", "neg"}
