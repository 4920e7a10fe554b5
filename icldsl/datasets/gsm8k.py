"""The built-in GSM8K loader: grade-school maths word problems (MIT, openai/grade-school-math).

Each row is `{"question": ..., "answer": "reasoning...\\n#### 1,234"}`; it becomes
x = {"question"}, y = {"thinking": the reasoning, "answer": 1234.0}.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from icldsl.datasets.base import DataError, Dataset, Example
from icldsl.datasets.download import Published
from icldsl.datasets.rows import check_options, read_jsonl, sample, to_example
from icldsl.language.catalogue.loaders import GSM8K_PATH_ENV, LOADERS

if TYPE_CHECKING:
    from pydantic import BaseModel

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://raw.githubusercontent.com/openai/grade-school-math/master/grade_school_math/data"
FILES = ("train.jsonl", "test.jsonl")
SOURCE = Published("gsm8k", "GSM8K", FILES, GSM8K_PATH_ENV, DEFAULT_BASE_URL)

_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")


def load(
    name: str,
    args: Mapping[str, Any],
    *,
    base_dir: Path,
    x_model: type[BaseModel],
    y_model: type[BaseModel],
    base_url: str | None = None,
) -> Dataset:
    """Load GSM8K as the `data` block `name`, every row validated by `x_model` and `y_model`
    (its options: `icldsl.language.catalogue.loaders`)."""
    opts = check_options("gsm8k", args, LOADERS["gsm8k"].signature)
    directory = SOURCE.find(opts.get("path"), base_dir=base_dir, base_url=base_url)
    seed = opts["seed"]
    train, test = (_examples(directory / file, x_model, y_model, f"{name}:{file}") for file in FILES)
    dataset = Dataset(
        name, sample(train, opts.get("train_limit"), seed), sample(test, opts.get("test_limit"), seed)
    )
    log.info("loaded gsm8k from %s: %d train, %d test", directory, len(dataset.train), len(dataset.test))
    return dataset


def parse_row(row: Mapping[str, Any], *, file: str, line: int) -> dict[str, Any]:
    """One GSM8K row flattened to {"question", "thinking", "answer"}."""
    for key in ("question", "answer"):
        if key not in row:
            raise DataError(f"missing key '{key}'", file=file, line=line)
        if not isinstance(row[key], str):
            raise DataError(f"'{key}' should be a string", file=file, line=line)
    thinking, mark, final = row["answer"].rpartition("####")
    if not mark:
        raise DataError("answer has no '####' before the final number", file=file, line=line)
    number = final.strip().replace(",", "")
    if not _NUMBER.fullmatch(number):
        raise DataError(f"final answer {final.strip()!r} is not a number", file=file, line=line)
    return {"question": row["question"], "thinking": thinking.strip(), "answer": float(number)}


def _examples(path: Path, x_model: type[BaseModel], y_model: type[BaseModel], origin: str) -> list[Example]:
    file = str(path)
    return [
        to_example(parse_row(row, file=file, line=line), x_model, y_model, file=file, line=line, origin=origin)
        for line, row in read_jsonl(path)
    ]
