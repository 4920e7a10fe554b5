"""The JSONL loader for the user's own data: one object per line, input and output fields at top level."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from icldsl.datasets.base import DataError, Dataset, Example
from icldsl.datasets.rows import check_options, read_jsonl, resolve, sample, split, to_example

log = logging.getLogger(__name__)

OPTIONS: Mapping[str, type] = {
    "path": str,
    "test": str,
    "split": float,
    "train_limit": int,
    "test_limit": int,
    "seed": int,
}
POSITIONAL = ("path",)
DEFAULT_SPLIT = 0.8
DOC = (
    "Examples from a JSONL file (the first argument), one object per line holding the input and "
    "output fields. `test` names a separate test file; otherwise a seeded choice of `split` "
    f"(default {DEFAULT_SPLIT}) of the rows trains. Relative paths are relative to the .icl file. "
    "train_limit/test_limit take a sample seeded by `seed` (default 0)."
)


def load(
    name: str,
    args: Mapping[str, Any],
    *,
    base_dir: Path,
    x_model: type[BaseModel],
    y_model: type[BaseModel],
) -> Dataset:
    """Load the `data` block `name` from JSONL, every row validated by `x_model` and `y_model`."""
    opts = check_options("jsonl", args, OPTIONS, required=("path",))
    if "test" in opts and "split" in opts:
        raise DataError("jsonl loader: give either a `test` file or a `split`, not both")
    fraction = opts.get("split", DEFAULT_SPLIT)
    if not 0.0 < fraction <= 1.0:
        raise DataError(f"jsonl loader: option 'split' should be above 0 and at most 1, got {fraction}")
    seed = opts.get("seed", 0)
    path = resolve(opts["path"], base_dir)
    rows = examples(path, x_model, y_model)
    if "test" in opts:
        train, test = tuple(rows), tuple(examples(resolve(opts["test"], base_dir), x_model, y_model))
    else:
        train, test = split(rows, fraction, seed)
    dataset = Dataset(
        name, sample(train, opts.get("train_limit"), seed), sample(test, opts.get("test_limit"), seed)
    )
    log.info("loaded %s from %s: %d train, %d test", name, path, len(dataset.train), len(dataset.test))
    return dataset


def examples(path: Path, x_model: type[BaseModel], y_model: type[BaseModel]) -> list[Example]:
    """Every row of a JSONL file as a validated Example; DataError at the first bad row."""
    file = str(path)
    return [to_example(row, x_model, y_model, file=file, line=line) for line, row in read_jsonl(path)]
