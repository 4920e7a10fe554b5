"""The loader catalogue the checker, the compiler and the loaders use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import BaseModel

import icldsl.datasets as datasets
from icldsl.datasets import DataError, load_dataset
from icldsl.datasets import base
from icldsl.language.catalogue.loaders import LOADERS
from icldsl.language.options import kind_of


class In(BaseModel):
    question: str


class Out(BaseModel):
    answer: float


def test_registry_names_options_and_positionals() -> None:
    assert set(LOADERS) == {"gsm8k", "clinc150", "jsonl", "json", "csv"}
    assert LOADERS["gsm8k"].signature.positional == LOADERS["clinc150"].signature.positional == ()

    def kinds(name: str) -> dict:
        return {option: kind_of(t) for option, t in LOADERS[name].signature.options.items()}

    assert kinds("clinc150") == {"path": str, "domain": str, "train_per_intent": int, "test_per_intent": int,
                                 "oos": bool, "seed": int}
    assert kinds("gsm8k") == {"path": str, "train_limit": int, "test_limit": int, "seed": int}
    common = {"path": str, "test": str, "split": float, "train_limit": int, "test_limit": int, "seed": int,
              "map": dict[str, str]}
    assert kinds("jsonl") == common
    assert kinds("json") == {**common, "key": str}
    assert kinds("csv") == {**common, "delimiter": str}
    for name in ("jsonl", "json", "csv"):
        assert LOADERS[name].signature.positional == LOADERS[name].signature.required == ("path",)
    for name, loader in LOADERS.items():
        assert loader.doc
        assert all(t in (str, int, float, bool, dict[str, str]) for t in kinds(name).values())
        assert set(loader.signature.positional) <= set(loader.signature.options)


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        LOADERS["csv"] = LOADERS["jsonl"]  # type: ignore[index]
    with pytest.raises(TypeError):
        LOADERS["jsonl"].signature.options["extra"] = str  # type: ignore[index]


def test_reexports() -> None:
    assert (datasets.Example, datasets.Dataset, datasets.DataError) == (base.Example, base.Dataset, base.DataError)


def test_load_dataset_dispatches(tmp_path: Path) -> None:
    (tmp_path / "qa.jsonl").write_text(json.dumps({"question": "2+2?", "answer": 4}) + "\n", encoding="utf-8")
    data = load_dataset("qa", "jsonl", {"path": "qa.jsonl", "split": 1.0}, base_dir=tmp_path, x_model=In, y_model=Out)
    assert data.name == "qa"
    assert data.train[0].x == {"question": "2+2?"}
    assert data.train[0].y == {"answer": 4.0}


def test_load_dataset_gsm8k(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text(json.dumps({"question": "q", "answer": "r\n#### 7"}) + "\n", "utf-8")
    (tmp_path / "test.jsonl").write_text(json.dumps({"question": "p", "answer": "s\n#### 8"}) + "\n", "utf-8")
    data = load_dataset("m", "gsm8k", {"path": "."}, base_dir=tmp_path, x_model=In, y_model=Out)
    assert (data.train[0].y, data.test[0].y) == ({"answer": 7.0}, {"answer": 8.0})


def test_unknown_loader() -> None:
    with pytest.raises(DataError, match=r"^unknown dataset loader 'parquet' \(known: clinc150, csv, gsm8k, json, jsonl\)$"):
        load_dataset("d", "parquet", {}, base_dir=Path("."), x_model=In, y_model=Out)
