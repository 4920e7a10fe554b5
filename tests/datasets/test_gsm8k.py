"""The GSM8K loader: parsing, sources (path, env, cache, download), sampling, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from icldsl.datasets import DataError, gsm8k
from icldsl.datasets.download import cache_dir


class Question(BaseModel):
    question: str


class Solution(BaseModel):
    thinking: str
    answer: float


def load(args: dict, *, base_dir: Path = Path("."), y_model: type[BaseModel] = Solution, **kw):
    return gsm8k.load("math", args, base_dir=base_dir, x_model=Question, y_model=y_model, **kw)


def row(question: str, answer: str) -> str:
    return json.dumps({"question": question, "answer": answer})


def write_gsm8k(directory: Path, train: list[str], test: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train.jsonl").write_text("\n".join(train) + "\n", encoding="utf-8")
    (directory / "test.jsonl").write_text("\n".join(test) + "\n", encoding="utf-8")
    return directory


TINY_TRAIN = [row("One plus one?", "1+1 = <<1+1=2>>2\n#### 2"), row("Big?", "Lots.\n#### 1,234"),
              row("Half?", "It is half.\n#### 0.5")]
TINY_TEST = [row("Two plus two?", "2+2=4\n#### 4"), row("Below zero?", "Cold.\n#### -3")]


# --- the real data ---------------------------------------------------------------------------


def test_first_train_row_of_the_real_copy(gsm8k_dir: Path) -> None:
    data = load({"path": str(gsm8k_dir)})
    assert data.name == "math"
    assert (len(data.train), len(data.test)) == (7473, 1319)
    first = data.train[0]
    assert first.x["question"].startswith("Natalia sold clips")
    assert set(first.x) == {"question"}
    assert first.y["answer"] == 72.0
    assert "48/2" in first.y["thinking"]
    assert "####" not in first.y["thinking"]
    assert first.y["thinking"] == first.y["thinking"].strip()
    assert first.origin == "math:train.jsonl:1"  # data block name, the file's base name, line
    assert data.test[0].origin == "math:test.jsonl:1"


def test_commas_are_removed_from_real_answers(gsm8k_dir: Path) -> None:
    data = load({"path": str(gsm8k_dir)})
    by_origin = {ex.origin: ex for ex in data.train}
    raw = (gsm8k_dir / "train.jsonl").read_text(encoding="utf-8").split("\n")[345]
    assert raw.endswith('#### 1,080"}')
    assert by_origin["math:train.jsonl:346"].y["answer"] == 1080.0


def test_crafted_numbers(tmp_path: Path) -> None:
    directory = write_gsm8k(tmp_path / "g", TINY_TRAIN + [row("Huge?", "x\n#### 1,234,567.25")], TINY_TEST)
    data = load({"path": str(directory)})
    assert [ex.y["answer"] for ex in data.train] == [2.0, 1234.0, 0.5, 1234567.25]
    assert [ex.y["answer"] for ex in data.test] == [4.0, -3.0]
    assert data.train[0].y["thinking"] == "1+1 = <<1+1=2>>2"


# --- limits and sampling -----------------------------------------------------------------------


def test_limits_take_a_reproducible_seeded_sample(gsm8k_dir: Path) -> None:
    full = load({"path": str(gsm8k_dir)})
    a = load({"path": str(gsm8k_dir), "train_limit": 20, "test_limit": 5})
    b = load({"path": str(gsm8k_dir), "train_limit": 20, "test_limit": 5, "seed": 0})
    c = load({"path": str(gsm8k_dir), "train_limit": 20, "test_limit": 5, "seed": 1})
    assert (len(a.train), len(a.test)) == (20, 5)
    assert a == b  # seed defaults to 0 and the sample is reproducible
    assert [ex.origin for ex in a.train] != [ex.origin for ex in c.train]
    assert [ex.origin for ex in a.test] != [ex.origin for ex in c.test]
    assert all(ex in full.train for ex in a.train) and all(ex in full.test for ex in a.test)
    # A sample, not the head of the file.
    assert [ex.origin for ex in a.train] != [ex.origin for ex in full.train[:20]]
    smaller = load({"path": str(gsm8k_dir), "train_limit": 7})
    assert smaller.train == a.train[:7]
    assert smaller.test == full.test  # no test_limit: every test row, in file order


def test_limit_larger_than_the_file_and_zero(tmp_path: Path) -> None:
    directory = write_gsm8k(tmp_path / "g", TINY_TRAIN, TINY_TEST)
    data = load({"path": str(directory), "train_limit": 100, "test_limit": 0})
    assert sorted(ex.origin for ex in data.train) == sorted(f"math:train.jsonl:{i}" for i in (1, 2, 3))
    assert data.test == ()


@pytest.mark.parametrize(
    "args, message",
    [
        ({"train_limit": -1}, "option 'train_limit' should be 0 or more"),
        ({"seed": -2}, "option 'seed' should be 0 or more"),
        ({"train_limit": "5"}, "option 'train_limit' should be int, got str"),
        ({"train_limit": True}, "option 'train_limit' should be int, got bool"),
        ({"split": 0.5}, "unknown option 'split'"),
    ],
)
def test_bad_options(tmp_path: Path, args: dict, message: str) -> None:
    directory = write_gsm8k(tmp_path / "g", TINY_TRAIN, TINY_TEST)
    with pytest.raises(DataError, match=message):
        load({"path": str(directory), **args})


# --- where the files come from --------------------------------------------------------------------


def test_relative_path_option_is_relative_to_base_dir(tmp_path: Path) -> None:
    write_gsm8k(tmp_path / "data" / "gsm", TINY_TRAIN, TINY_TEST)
    data = load({"path": "data/gsm"}, base_dir=tmp_path)
    assert data.train[1].origin == "math:train.jsonl:2"
    assert data.train[1].x["question"] == "Big?"  # read from data/gsm under base_dir



def test_origins_do_not_depend_on_the_machine(tmp_path: Path) -> None:
    """Origins go into artifacts: they name the file, not the folder it sits in on this machine."""
    loaded = []
    for directory in (tmp_path / "one", tmp_path / "elsewhere" / "two"):
        write_gsm8k(directory, TINY_TRAIN, TINY_TEST)
        data = load({"path": str(directory)})  # even an absolute `path` option
        every = [ex.origin for ex in (*data.train, *data.test)]
        assert not any(str(directory) in o or str(tmp_path) in o for o in every)
        loaded.append(every)
    assert loaded[0] == loaded[1] == ["math:train.jsonl:1", "math:train.jsonl:2", "math:train.jsonl:3",
                                      "math:test.jsonl:1", "math:test.jsonl:2"]

def test_env_var_path(gsm8k_dir: Path, monkeypatch: pytest.MonkeyPatch, closed_port_url: str) -> None:
    monkeypatch.setenv("ICLDSL_GSM8K_PATH", str(gsm8k_dir))
    data = load({}, base_url=closed_port_url)  # never downloads
    assert len(data.train) == 7473
    assert data.train[0].origin == "math:train.jsonl:1"
    assert data.train[0].x["question"].startswith("Natalia sold clips")  # the copy the variable names


def test_path_option_wins_over_env_var(tmp_path: Path, gsm8k_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = write_gsm8k(tmp_path / "g", TINY_TRAIN, TINY_TEST)
    monkeypatch.setenv("ICLDSL_GSM8K_PATH", str(gsm8k_dir))
    assert len(load({"path": str(directory)}).train) == 3


def test_env_var_pointing_nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICLDSL_GSM8K_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"no GSM8K train.jsonl in the directory given by \$ICLDSL_GSM8K_PATH"):
        load({})


def test_path_option_missing_test_file(tmp_path: Path) -> None:
    directory = write_gsm8k(tmp_path / "g", TINY_TRAIN, TINY_TEST)
    (directory / "test.jsonl").unlink()
    with pytest.raises(DataError, match="no GSM8K test.jsonl") as info:
        load({"path": str(directory)})
    assert info.value.file == str(directory)


def test_cache_dir_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ICLDSL_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir("gsm8k") == tmp_path / "c" / "datasets" / "gsm8k"
    monkeypatch.delenv("ICLDSL_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir("gsm8k") == tmp_path / "home" / ".cache" / "icldsl" / "datasets" / "gsm8k"


# --- downloading ---------------------------------------------------------------------------------


def test_download_into_cache_then_reuse_without_server(file_server, clean_env: Path) -> None:
    write_gsm8k(file_server.root, TINY_TRAIN, TINY_TEST)
    cache = clean_env / "datasets" / "gsm8k"
    first = load({}, base_url=file_server.url)
    assert sorted(file_server.requests) == ["/test.jsonl", "/train.jsonl"]
    for name in ("train.jsonl", "test.jsonl"):
        assert (cache / name).read_bytes() == (file_server.root / name).read_bytes()
    assert sorted(p.name for p in cache.iterdir()) == ["test.jsonl", "train.jsonl"]  # no temp files left
    assert first.train[1].origin == "math:train.jsonl:2"
    assert first.train[1].y["answer"] == 1234.0

    file_server.stop()
    second = load({}, base_url=file_server.url)
    assert second == first
    assert len(file_server.requests) == 2


def test_download_fetches_only_the_missing_file(file_server, clean_env: Path) -> None:
    write_gsm8k(file_server.root, TINY_TRAIN, TINY_TEST)
    write_gsm8k(clean_env / "datasets" / "gsm8k", TINY_TRAIN[:1], TINY_TEST)
    (clean_env / "datasets" / "gsm8k" / "test.jsonl").unlink()
    data = load({}, base_url=file_server.url + "/")
    assert file_server.requests == ["/test.jsonl"]
    assert (len(data.train), len(data.test)) == (1, 2)


def test_offline_failure_message(closed_port_url: str, clean_env: Path) -> None:
    with pytest.raises(DataError) as info:
        load({}, base_url=closed_port_url)
    message = str(info.value)
    assert message.startswith(f"could not download GSM8K from {closed_port_url}/train.jsonl: ")
    assert message.endswith("; set ICLDSL_GSM8K_PATH to a local copy")
    cache = clean_env / "datasets" / "gsm8k"
    assert list(cache.iterdir()) == []  # no partial file left behind


def test_http_error_leaves_no_partial_file(file_server, clean_env: Path) -> None:
    (file_server.root / "train.jsonl").write_text("\n".join(TINY_TRAIN), encoding="utf-8")
    with pytest.raises(DataError, match=r"test\.jsonl: HTTP 404 .*; set ICLDSL_GSM8K_PATH"):
        load({}, base_url=file_server.url)
    assert [p.name for p in (clean_env / "datasets" / "gsm8k").iterdir()] == ["train.jsonl"]


def test_empty_download_is_refused(file_server, clean_env: Path) -> None:
    write_gsm8k(file_server.root, TINY_TRAIN, TINY_TEST)
    (file_server.root / "test.jsonl").write_bytes(b"")
    with pytest.raises(DataError, match="the response was empty"):
        load({}, base_url=file_server.url)
    assert not (clean_env / "datasets" / "gsm8k" / "test.jsonl").exists()


# --- malformed rows ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, message",
    [
        ('{"question": "q", "answer": "x\\n#### 1"', "invalid JSON"),
        ('["question", "answer"]', "expected a JSON object, got array"),
        ('{"answer": "x\\n#### 1"}', "missing key 'question'"),
        ('{"question": "q"}', "missing key 'answer'"),
        ('{"question": "q", "answer": 5}', "'answer' should be a string"),
        ('{"question": "q", "answer": "no marker, 5"}', "answer has no '####'"),
        ('{"question": "q", "answer": "x\\n#### twelve"}', "final answer 'twelve' is not a number"),
        ('{"question": "q", "answer": "x\\n#### 1.2.3"}', "final answer '1.2.3' is not a number"),
        ('{"question": "q", "answer": "x\\n#### "}', "final answer '' is not a number"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path: Path, bad: str, message: str) -> None:
    # A blank second line: line numbers count it, as an editor would.
    directory = write_gsm8k(tmp_path / "g", [TINY_TRAIN[0], "", TINY_TRAIN[1], bad, TINY_TRAIN[2]], TINY_TEST)
    train = str(directory / "train.jsonl")
    with pytest.raises(DataError) as info:
        load({"path": str(directory), "train_limit": 1})  # every row is checked, not just the sample
    assert (info.value.file, info.value.line) == (train, 4)
    assert str(info.value).startswith(f"{train}:4: ")
    assert message in str(info.value)


def test_malformed_row_in_test_file(tmp_path: Path) -> None:
    directory = write_gsm8k(tmp_path / "g", TINY_TRAIN, [TINY_TEST[0], '{"question": "q"}'])
    with pytest.raises(DataError, match=rf"^{tmp_path}/g/test\.jsonl:2: missing key 'answer'$"):
        load({"path": str(directory)})


# --- validation against the program's models -------------------------------------------------------------


def test_rows_are_validated_and_dumped_by_the_models(tmp_path: Path) -> None:
    class IntAnswer(BaseModel):
        answer: int

    directory = write_gsm8k(tmp_path / "g", TINY_TRAIN[:2], TINY_TEST[:1])
    data = load({"path": str(directory)}, y_model=IntAnswer)
    assert data.train[0].y == {"answer": 2}  # thinking is not a field of the output model
    assert type(data.train[0].y["answer"]) is int


def test_row_failing_validation_names_file_and_line(tmp_path: Path) -> None:
    class IntAnswer(BaseModel):
        answer: int

    directory = write_gsm8k(tmp_path / "g", TINY_TRAIN, TINY_TEST)  # line 3 answers 0.5
    with pytest.raises(DataError) as info:
        load({"path": str(directory)}, y_model=IntAnswer)
    assert (info.value.file, info.value.line) == (str(directory / "train.jsonl"), 3)
    assert "output field 'answer': Input should be a valid integer" in str(info.value)
    assert "(got 0.5)" in str(info.value)
    assert "http" not in str(info.value) and "\n" not in str(info.value)


def test_output_model_needing_a_field_gsm8k_lacks(tmp_path: Path) -> None:
    class WithUnit(BaseModel):
        answer: float
        unit: str = Field(min_length=1)

    directory = write_gsm8k(tmp_path / "g", TINY_TRAIN, TINY_TEST)
    with pytest.raises(DataError, match=r"train\.jsonl:1: output field 'unit': Field required$"):
        load({"path": str(directory)}, y_model=WithUnit)
