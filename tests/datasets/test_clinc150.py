"""The CLINC150 loader: domains, per-intent samples, out-of-scope queries, sources, bad data."""

from __future__ import annotations

import json
import shutil
import typing
from collections import Counter
from pathlib import Path

import pytest
from pydantic import BaseModel, create_model

from icldsl.datasets import DataError, clinc150

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "clinc150"


class Query(BaseModel):
    query: str


class AnyIntent(BaseModel):
    intent: str


def labels(*names: str) -> type[BaseModel]:
    return create_model("Intent", intent=(typing.Literal[names], ...))


@pytest.fixture
def clinc_dir() -> Path:
    if not (SHARED / "data_full.json").is_file():
        pytest.skip(f"no CLINC150 copy at {SHARED}")
    return SHARED


def domains() -> dict[str, list[str]]:
    return json.loads((SHARED / "domains.json").read_text(encoding="utf-8"))


def load(args: dict, y_model: type[BaseModel] = AnyIntent, **kw):
    return clinc150.load("c", args, base_dir=Path("."), x_model=Query, y_model=y_model, **kw)


def test_one_domain_sampled_per_intent(clinc_dir: Path) -> None:
    banking = domains()["banking"]
    data = load({"path": str(clinc_dir), "domain": "banking", "train_per_intent": 20, "test_per_intent": 6},
                labels(*banking))
    assert Counter(e.y["intent"] for e in data.train) == {i: 20 for i in banking}
    assert Counter(e.y["intent"] for e in data.test) == {i: 6 for i in banking}
    first = data.train[0]
    line = int(first.origin.rsplit(":", 1)[1])
    assert first.origin == f"c:data_full.json:{line}"
    text = (clinc_dir / "data_full.json").read_text(encoding="utf-8").split("\n")
    assert text[line - 1].strip() == "[" and json.loads(text[line].strip().rstrip(",")) == first.x["query"]


def test_a_smaller_sample_is_part_of_a_larger_one_and_the_seed_changes_it(clinc_dir: Path) -> None:
    args = {"path": str(clinc_dir), "domain": "travel", "test_per_intent": 1}
    small, large = (load({**args, "train_per_intent": n}) for n in (5, 10))
    assert {e.origin for e in small.train} < {e.origin for e in large.train}
    other = load({**args, "train_per_intent": 5, "seed": 1})
    assert {e.origin for e in other.train} != {e.origin for e in small.train}


def test_everything_and_out_of_scope(clinc_dir: Path) -> None:
    data = load({"path": str(clinc_dir)})
    assert (len(data.train), len(data.test)) == (15_000, 4_500)
    with_oos = load({"path": str(clinc_dir), "domain": "work", "oos": True, "train_per_intent": 3,
                     "test_per_intent": 2})
    assert Counter(e.y["intent"] for e in with_oos.train)["oos"] == 3
    assert len(with_oos.test) == 16 * 2


def test_an_enum_that_leaves_out_intents_is_refused_before_reading_rows(clinc_dir: Path) -> None:
    with pytest.raises(DataError, match=r"the output's `intent` labels leave out 13 intent\(s\) of domain "
                                        r"'banking': .*; list them in the enum, or choose another `domain`"):
        load({"path": str(clinc_dir), "domain": "banking"}, labels("freeze_account", "routing"))


@pytest.mark.parametrize("args, message", [
    ({"domain": "space"}, "unknown domain 'space' (domains: banking, credit_cards"),
    ({"train_per_intent": 0}, "option 'train_per_intent' should be 1 or more"),
    ({"domain": 3}, "option 'domain' should be str"),
    ({"shuffle": True}, "unknown option 'shuffle'"),
])
def test_bad_options(clinc_dir: Path, args: dict, message: str) -> None:
    with pytest.raises(DataError) as info:
        load({"path": str(clinc_dir), **args})
    assert message in str(info.value)


def test_sources_env_then_download_into_the_cache(tmp_path: Path, clinc_dir: Path, file_server, clean_env: Path,
                                                  monkeypatch) -> None:
    monkeypatch.setenv("ICLDSL_CLINC150_PATH", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"no CLINC150 data_full.json in the directory given by "
                                        r"\$ICLDSL_CLINC150_PATH"):
        load({})
    monkeypatch.delenv("ICLDSL_CLINC150_PATH")
    for name in clinc150.FILES:
        shutil.copy(clinc_dir / name, file_server.root / name)
    data = load({"domain": "utility", "train_per_intent": 2, "test_per_intent": 2}, base_url=file_server.url)
    assert sorted(file_server.requests) == ["/data_full.json", "/domains.json"]
    assert sorted(p.name for p in (clean_env / "datasets" / "clinc150").iterdir()) == sorted(clinc150.FILES)
    file_server.stop()
    assert load({"domain": "utility", "train_per_intent": 2, "test_per_intent": 2},
                base_url=file_server.url) == data


def test_a_failed_download_says_how_to_do_without_it(closed_port_url: str, clean_env: Path) -> None:
    with pytest.raises(DataError, match=r"could not download CLINC150 from .*; set ICLDSL_CLINC150_PATH to a "
                                        r"local copy$"):
        load({}, base_url=closed_port_url)


def test_a_malformed_file_is_named(tmp_path: Path, clinc_dir: Path) -> None:
    shutil.copy(clinc_dir / "domains.json", tmp_path / "domains.json")
    (tmp_path / "data_full.json").write_text('{"train": [["a", "b"]], "test": []}', encoding="utf-8")
    with pytest.raises(DataError, match=r"data_full.json: 'oos_train' should be a list of \[query, intent\] pairs"):
        load({"path": str(tmp_path)})
