"""The JSONL loader: paths, split or test file, limits, validation against the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel

from icldsl.datasets import DataError
from icldsl.datasets.files import JSONL


class Review(BaseModel):
    text: str
    stars: int


class Verdict(BaseModel):
    label: Literal["pos", "neg"]


def load(args: dict, base_dir: Path):
    return JSONL.load("reviews", args, base_dir=base_dir, x_model=Review, y_model=Verdict)


def rows(n: int, start: int = 0) -> list[dict]:
    return [
        {"text": f"review {i}", "stars": i % 5 + 1, "label": "pos" if i % 2 else "neg"} for i in range(start, start + n)
    ]


def write(path: Path, items: list) -> Path:
    """Write items as JSONL; a str item is written as the raw line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [item if isinstance(item, str) else json.dumps(item) for item in items]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def origins(examples) -> list[str]:
    return [ex.origin for ex in examples]


def test_rows_become_validated_examples(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [{"text": "fine", "stars": "4", "label": "pos", "note": "ignored"}])
    data = load({"path": str(path), "split": 1.0}, tmp_path)
    (ex,) = data.train
    assert ex.x == {"text": "fine", "stars": 4}  # coerced by the input model; extra keys dropped
    assert ex.y == {"label": "pos"}
    assert ex.origin == f"reviews:{path}:1"  # data block name, path as written, line
    assert data.test == ()


def test_default_split_is_seeded_disjoint_and_complete(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", rows(10))
    data = load({"path": str(path)}, tmp_path)
    assert (len(data.train), len(data.test)) == (8, 2)
    assert sorted(origins(data.train) + origins(data.test)) == sorted(f"reviews:{path}:{i}" for i in range(1, 11))
    assert origins(data.train) == sorted(origins(data.train), key=lambda o: int(o.rsplit(":", 1)[1]))  # file order
    assert origins(data.test) != [f"reviews:{path}:9", f"reviews:{path}:10"]  # a seeded choice, not the tail
    assert load({"path": str(path), "seed": 0}, tmp_path) == data
    other = load({"path": str(path), "seed": 3}, tmp_path)
    assert set(origins(other.test)) != set(origins(data.test))


def test_split_fraction(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", rows(10))
    data = load({"path": str(path), "split": 0.5}, tmp_path)
    assert (len(data.train), len(data.test)) == (5, 5)
    tiny = write(tmp_path / "one.jsonl", rows(1))
    data = load({"path": str(tiny), "split": 0.3}, tmp_path)
    assert (len(data.train), len(data.test)) == (1, 0)  # training always keeps a row


@pytest.mark.parametrize("fraction", [0.0, -0.5, 1.5])
def test_split_out_of_range(tmp_path: Path, fraction: float) -> None:
    path = write(tmp_path / "r.jsonl", rows(4))
    with pytest.raises(DataError, match="option 'split' should be above 0 and at most 1"):
        load({"path": str(path), "split": fraction}, tmp_path)


def test_split_accepts_an_int(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", rows(4))
    assert len(load({"path": str(path), "split": 1}, tmp_path).train) == 4


def test_separate_test_file(tmp_path: Path) -> None:
    train = write(tmp_path / "train.jsonl", rows(6))
    test = write(tmp_path / "test.jsonl", rows(3, start=100))
    data = load({"path": str(train), "test": str(test)}, tmp_path)
    assert origins(data.train) == [f"reviews:{train}:{i}" for i in range(1, 7)]  # whole file, in order
    assert origins(data.test) == [f"reviews:{test}:{i}" for i in range(1, 4)]  # named by the `test` option
    assert data.test[0].x["text"] == "review 100"


def test_test_file_and_split_together_are_refused(tmp_path: Path) -> None:
    train = write(tmp_path / "train.jsonl", rows(6))
    with pytest.raises(DataError, match="either a `test` file or a `split`"):
        load({"path": str(train), "test": str(train), "split": 0.5}, tmp_path)


def test_relative_paths_are_relative_to_base_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = tmp_path / "programs"
    write(base / "data" / "train.jsonl", rows(2))
    write(base / "data" / "test.jsonl", rows(1))
    monkeypatch.chdir(tmp_path)  # not the .icl file's directory
    data = load({"path": "data/train.jsonl", "test": "data/test.jsonl"}, base)
    assert data.train[1].origin == "reviews:data/train.jsonl:2"  # the path as written, not resolved
    assert data.test[0].origin == "reviews:data/test.jsonl:1"
    assert (data.train[1].x, data.test[0].x) == (
        {"text": "review 1", "stars": 2}, {"text": "review 0", "stars": 1})  # read from under base_dir



def test_origins_do_not_depend_on_the_machine(tmp_path: Path) -> None:
    """The same program and data in two different folders give the same origins (they go into artifacts)."""
    loaded = []
    for folder in (tmp_path / "one", tmp_path / "elsewhere" / "two"):
        write(folder / "data" / "train.jsonl", rows(4))
        write(folder / "data" / "test.jsonl", rows(2))
        data = load({"path": "data/train.jsonl", "test": "data/test.jsonl"}, folder)
        every = origins(data.train) + origins(data.test)
        assert not any(str(folder) in o or str(tmp_path) in o for o in every)
        loaded.append(every)
    assert loaded[0] == loaded[1] == [*(f"reviews:data/train.jsonl:{i}" for i in range(1, 5)),
                                      "reviews:data/test.jsonl:1", "reviews:data/test.jsonl:2"]

def test_blank_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    r = rows(3)
    path = write(tmp_path / "r.jsonl", ["", r[0], "   ", "", r[1], r[2], ""])
    data = load({"path": str(path), "split": 1.0}, tmp_path)
    assert origins(data.train) == [f"reviews:{path}:2", f"reviews:{path}:5", f"reviews:{path}:6"]


def test_limits_sample_after_the_split(tmp_path: Path) -> None:
    train = write(tmp_path / "train.jsonl", rows(30))
    test = write(tmp_path / "test.jsonl", rows(10, start=50))
    a = load({"path": str(train), "test": str(test), "train_limit": 5, "test_limit": 2}, tmp_path)
    b = load({"path": str(train), "test": str(test), "train_limit": 5, "test_limit": 2, "seed": 9}, tmp_path)
    assert (len(a.train), len(a.test)) == (5, 2)
    assert a == load({"path": str(train), "test": str(test), "train_limit": 5, "test_limit": 2}, tmp_path)
    assert origins(a.train) != origins(b.train)
    assert origins(a.train) != [f"reviews:{train}:{i}" for i in range(1, 6)]
    split = load({"path": str(train), "split": 0.5, "train_limit": 4, "test_limit": 100}, tmp_path)
    assert (len(split.train), len(split.test)) == (4, 15)


def test_row_failing_validation_names_file_and_line(tmp_path: Path) -> None:
    r = rows(4)
    r[2]["label"] = "maybe"
    path = write(tmp_path / "r.jsonl", r)
    with pytest.raises(DataError) as info:
        load({"path": str(path), "train_limit": 1}, tmp_path)  # every row is checked, not just the sample
    assert (info.value.file, info.value.line) == (str(path), 3)
    message = str(info.value)
    assert message.startswith(f"{path}:3: output field 'label': Input should be 'pos' or 'neg'")
    assert "(got 'maybe')" in message
    assert "errors.pydantic.dev" not in message and "\n" not in message


def test_missing_and_badly_typed_input_fields(tmp_path: Path) -> None:
    path = write(tmp_path / "r.jsonl", [*rows(1), {"label": "pos", "stars": "many"}])
    with pytest.raises(DataError) as info:
        load({"path": str(path)}, tmp_path)
    assert info.value.line == 2
    assert str(info.value) == (
        f"{path}:2: input field 'text': Field required; "
        "field 'stars': Input should be a valid integer, unable to parse string as an integer (got 'many')"
    )


def test_bad_row_in_the_test_file_names_that_file(tmp_path: Path) -> None:
    train = write(tmp_path / "train.jsonl", rows(3))
    test = write(tmp_path / "test.jsonl", [*rows(1), "{not json"])
    with pytest.raises(DataError, match=rf"^{test}:2: invalid JSON: "):
        load({"path": str(train), "test": str(test)}, tmp_path)


@pytest.mark.parametrize(
    "line, message",
    [("[1, 2]", "expected a JSON object, got array"), ("null", "expected a JSON object, got null"),
     ('"text"', "expected a JSON object, got string"), ('{"text": "a",}', "invalid JSON")],
)
def test_lines_that_are_not_objects(tmp_path: Path, line: str, message: str) -> None:
    path = write(tmp_path / "r.jsonl", [*rows(2), line])
    with pytest.raises(DataError, match=rf"^{path}:3: {message}"):
        load({"path": str(path)}, tmp_path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"^{tmp_path}/absent\.jsonl: file not found$"):
        load({"path": "absent.jsonl"}, tmp_path)
    empty = write(tmp_path / "empty.jsonl", ["", ""])
    with pytest.raises(DataError, match="empty.jsonl: no examples$"):
        load({"path": str(empty)}, tmp_path)


@pytest.mark.parametrize(
    "args, message",
    [({}, "missing option 'path'"), ({"path": 3}, "option 'path' should be str, got int"),
     ({"path": "r.jsonl", "limit": 3}, "unknown option 'limit'"),
     ({"path": "r.jsonl", "test_limit": -1}, "option 'test_limit' should be 0 or more")],
)
def test_bad_options(tmp_path: Path, args: dict, message: str) -> None:
    write(tmp_path / "r.jsonl", rows(3))
    with pytest.raises(DataError, match=message):
        load(args, tmp_path)


def test_line_separator_characters_inside_strings(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"text": "a\u2028b", "stars": 1, "label": "pos"}\n', encoding="utf-8")
    data = load({"path": str(path), "split": 1.0}, tmp_path)
    assert data.train[0].x["text"] == "a\u2028b"
