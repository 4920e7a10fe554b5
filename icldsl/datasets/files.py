"""The loaders of the user's own files: `jsonl`, `json` and `csv`.

They share their options: the file (first argument), a separate `test` file or a seeded
`split`, `train_limit`/`test_limit` samples seeded by `seed`, and `map: { field: "column" }`
naming the column each of the program's fields reads. Every row of every file is
validated against the program's models before the loader returns; a bad row is reported
with its file and line, and nothing is half-loaded.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from icldsl.datasets.base import DataError, Dataset, Example
from icldsl.jsontext import JSONTextError, loads
from icldsl.language.catalogue.loaders import LOADERS
from icldsl.datasets.rows import (
    check_columns,
    check_mapping,
    check_options,
    read_jsonl,
    read_text,
    resolve,
    sample,
    split,
    to_examples,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

log = logging.getLogger(__name__)

Rows = list[tuple[int, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class FileFormat:
    """One file loader: how to read rows (line, dict); its options are declared in
    `icldsl.language.catalogue.loaders`.

    `read(path, opts) -> (rows, header)`: header is the column names when the format
    has one (CSV), else None (the columns are the keys rows hold).
    """

    name: str
    read: Callable[[Path, Mapping[str, Any]], tuple[Rows, list[str] | None]]
    text_cells: bool = False

    def load(
        self,
        name: str,
        args: Mapping[str, Any],
        *,
        base_dir: Path,
        x_model: type[BaseModel],
        y_model: type[BaseModel],
    ) -> Dataset:
        """The `data` block `name` read from its file(s), every row validated."""
        opts = check_options(self.name, args, LOADERS[self.name].signature)
        fraction = opts["split"]
        mapping = check_mapping(self.name, opts.get("map", {}), x_model, y_model)
        seed = opts["seed"]
        path = resolve(opts["path"], base_dir)
        rows = self.examples(path, opts, mapping, x_model, y_model, origin=f"{name}:{opts['path']}")
        if "test" in opts:
            test_path = resolve(opts["test"], base_dir)
            train, test = tuple(rows), tuple(self.examples(test_path, opts, mapping, x_model, y_model,
                                                           origin=f"{name}:{opts['test']}"))
        else:
            train, test = split(rows, fraction, seed)
        dataset = Dataset(
            name, sample(train, opts.get("train_limit"), seed), sample(test, opts.get("test_limit"), seed)
        )
        log.info("loaded %s from %s: %d train, %d test", name, path, len(dataset.train), len(dataset.test))
        return dataset

    def examples(
        self,
        path: Path,
        opts: Mapping[str, Any],
        mapping: Mapping[str, str],
        x_model: type[BaseModel],
        y_model: type[BaseModel],
        origin: str | None = None,
    ) -> list[Example]:
        """Every row of one file as a validated Example (origins `<origin>:<line>`); one DataError
        lists the bad rows."""
        file = str(path)
        rows, header = self.read(path, opts)
        if not rows:
            raise DataError("no examples", file=file)
        if header is not None:
            check_columns(header, mapping, x_model, y_model, file=file, line=1)
        else:
            check_columns({key for _, row in rows for key in row}, mapping, x_model, y_model, file=file)
        return to_examples(rows, x_model, y_model, file=file, mapping=mapping, text_cells=self.text_cells,
                           origin=origin)


# ---- JSONL --------------------------------------------------------------------------------


def _read_jsonl(path: Path, opts: Mapping[str, Any]) -> tuple[Rows, None]:
    return read_jsonl(path), None


# ---- JSON ---------------------------------------------------------------------------------

_JSON_KINDS = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}
_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _read_json(path: Path, opts: Mapping[str, Any]) -> tuple[Rows, None]:
    """The objects of a JSON array: the whole file, or the array at `key` (dotted: `a.b`)."""
    file = str(path)
    text = read_text(path)
    try:
        doc = loads(text)
    except JSONTextError as exc:
        where = f" (column {exc.column})" if exc.column else ""
        raise DataError(f"invalid JSON: {exc.reason}{where}", file=file, line=exc.line) from None
    keys = tuple(opts["key"].split(".")) if "key" in opts else ()
    where = "the file"
    for depth, key in enumerate(keys):
        if not isinstance(doc, dict) or key not in doc:
            have = f" (keys: {', '.join(doc)})" if isinstance(doc, dict) else ""
            raise DataError(f"no key '{'.'.join(keys[: depth + 1])}' in {where}{have}", file=file)
        doc, where = doc[key], f"'{'.'.join(keys[: depth + 1])}'"
    if not isinstance(doc, list):
        hint = ""
        if isinstance(doc, dict):
            arrays = [k for k, v in doc.items() if isinstance(v, list)]
            hint = f"; name the key that holds the rows with `key: \"{arrays[0]}\"`" if arrays else ""
        raise DataError(f"expected {where} to hold an array of objects, got {_JSON_KINDS[type(doc)]}{hint}", file=file)
    lines = element_lines(text, keys)
    rows: Rows = []
    for line, row in zip(lines, doc):
        if not isinstance(row, dict):
            raise DataError(f"expected a JSON object, got {_JSON_KINDS[type(row)]}", file=file, line=line)
        rows.append((line, row))
    return rows, None


def element_lines(text: str, keys: tuple[str, ...]) -> list[int]:
    """The 1-based line where each element of the array at `keys` starts (text is valid JSON)."""
    newlines = [m.start() for m in re.finditer("\n", text)]
    i = _skip(text, 0)
    for key in keys:  # walk into the object; json.loads keeps the last of duplicate keys, so do we
        i, found = _skip(text, i + 1), None
        while text[i] != "}":
            name, i = _DECODER.raw_decode(text, i)
            i = _skip(text, _skip(text, i) + 1)  # the colon
            if name == key:
                found = i
            _, i = _DECODER.raw_decode(text, i)
            i = _skip(text, i)
            if text[i] == ",":
                i = _skip(text, i + 1)
        i = found  # type: ignore[assignment]  # the caller checked that the key exists
    starts = []
    i = _skip(text, i + 1)
    while text[i] != "]":
        starts.append(i)
        _, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i] == ",":
            i = _skip(text, i + 1)
    return [bisect.bisect_left(newlines, start) + 1 for start in starts]


def _skip(text: str, i: int) -> int:
    return _SPACE.match(text, i).end()  # type: ignore[union-attr]  # matches the empty string


# ---- CSV ----------------------------------------------------------------------------------


def _read_csv(path: Path, opts: Mapping[str, Any]) -> tuple[Rows, list[str]]:
    """Rows of a CSV file with a header line; a `.tsv` file defaults to tab-separated."""
    file = str(path)
    delimiter = opts.get("delimiter", "\t" if path.suffix.lower() == ".tsv" else ",")
    text = read_text(path)
    # newline="": a quoted cell may hold line breaks; rows end only at \n, \r\n or \r.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    rows: Rows = []
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # a blank line
            if header is None:
                header = [c.strip() for c in cells]
                duplicated = sorted({c for c in header if header.count(c) > 1})
                if duplicated:
                    raise DataError(f"the header names column '{duplicated[0]}' twice", file=file, line=line)
                if "" in header:
                    raise DataError(f"the header has an unnamed column (column {header.index('') + 1})",
                                    file=file, line=line)
                continue
            if len(cells) != len(header):
                raise DataError(f"expected {len(header)} cells as in the header, got {len(cells)}",
                                file=file, line=line)
            rows.append((line, dict(zip(header, cells))))
    except csv.Error as exc:
        raise DataError(f"invalid CSV: {exc}", file=file, line=start) from exc
    if header is None:
        raise DataError("no header line and no examples", file=file)
    return rows, header


JSONL = FileFormat("jsonl", _read_jsonl)
JSON = FileFormat("json", _read_json)
CSV = FileFormat("csv", _read_csv, text_cells=True)
FORMATS: Mapping[str, FileFormat] = MappingProxyType({f.name: f for f in (JSONL, JSON, CSV)})
