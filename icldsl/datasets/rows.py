"""What every loader shares: options, JSONL rows, validation against the models, sampling."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from icldsl.datasets.base import DataError, Example

T = TypeVar("T")

_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def check_options(
    loader: str, args: Mapping[str, Any], spec: Mapping[str, type], *, required: Iterable[str] = ()
) -> dict[str, Any]:
    """The loader's options from `args`, type-checked against `spec`; ints widen to floats."""
    unknown = sorted(set(args) - set(spec))
    if unknown:
        raise DataError(
            f"{loader} loader: unknown option '{unknown[0]}' (expected one of: {', '.join(spec)})"
        )
    for name in required:
        if name not in args:
            raise DataError(f"{loader} loader: missing option '{name}'")
    opts: dict[str, Any] = {}
    for name, value in args.items():
        want = spec[name]
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not want:
            raise DataError(
                f"{loader} loader: option '{name}' should be {want.__name__}, got {type(value).__name__}"
            )
        opts[name] = value
    for name in ("train_limit", "test_limit", "seed"):
        if opts.get(name, 0) < 0:
            raise DataError(f"{loader} loader: option '{name}' should be 0 or more, got {opts[name]}")
    return opts


def resolve(path: str, base_dir: Path) -> Path:
    """`path` with `~` expanded, taken relative to `base_dir` unless absolute."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else base_dir / p


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """Every non-blank line of `path` as (1-based line number, JSON object)."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("file not found", file=file) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read file: {exc}", file=file) from exc
    rows = []
    # Split on "\n" only: str.splitlines would also break on U+2028 inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg} (column {exc.colno})", file=file, line=number) from exc
        if not isinstance(row, dict):
            kind = _JSON_TYPES.get(type(row), "null")
            raise DataError(f"expected a JSON object, got {kind}", file=file, line=number)
        rows.append((number, row))
    if not rows:
        raise DataError("no examples", file=file)
    return rows


def to_example(
    row: Mapping[str, Any], x_model: type[BaseModel], y_model: type[BaseModel], *, file: str, line: int
) -> Example:
    """The row's input and output fields, validated by the program's models, as an Example."""
    x = _validated(row, x_model, "input", file, line)
    y = _validated(row, y_model, "output", file, line)
    return Example(x=x, y=y, origin=f"{file}:{line}")


def _validated(
    row: Mapping[str, Any], model: type[BaseModel], role: str, file: str, line: int
) -> dict[str, Any]:
    keys = [field.alias or name for name, field in model.model_fields.items()]
    values = {key: row[key] for key in keys if key in row}
    try:
        return model.model_validate(values).model_dump(mode="json", by_alias=True)
    except ValidationError as exc:
        raise DataError(f"{role} {summarize(exc)}", file=file, line=line) from exc


def summarize(exc: ValidationError) -> str:
    """A pydantic error on one line: each field and what is wrong with it, no URLs."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"])
        text = f"field '{where}': {error['msg']}"
        if error["type"] != "missing":
            shown = repr(error["input"])
            text += f" (got {shown if len(shown) <= 40 else shown[:37] + '...'})"
        parts.append(text)
    return "; ".join(parts)


def sample(items: Sequence[T], limit: int | None, seed: int) -> tuple[T, ...]:
    """All items in order when `limit` is None, else the first `limit` of a seeded permutation.

    A sample with a smaller limit is a prefix of one with a larger limit and the same seed.
    """
    if limit is None:
        return tuple(items)
    order = np.random.default_rng(seed).permutation(len(items))[:limit]
    return tuple(items[int(i)] for i in order)


def split(items: Sequence[T], fraction: float, seed: int) -> tuple[tuple[T, ...], tuple[T, ...]]:
    """(train, test): a seeded choice of `fraction` of the items (at least one) for training.

    Both parts keep the items' order; only which item goes where is random.
    """
    n = len(items)
    cut = min(n, max(1, math.floor(n * fraction + 0.5)))
    chosen = set(np.random.default_rng(seed).permutation(n)[:cut].tolist())
    train = tuple(item for i, item in enumerate(items) if i in chosen)
    test = tuple(item for i, item in enumerate(items) if i not in chosen)
    return train, test
