"""What `icldsl check` reads of a data file: whether it is there, and the columns of its first
rows, from at most PEEK_BYTES of it (the standard library alone: checking loads no pydantic).

A CSV header names every column; the first rows of a JSONL or JSON file name the columns those
rows hold. A required field that a first row lacks fails that row when the file loads, so a
column missing from them is a mistake whatever the rest of the file holds.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEEK_BYTES = 64 * 1024  # of a CSV or JSONL file: its header, or its first rows
PEEK_JSON_BYTES = 4 * 2**20  # a JSON file is parsed whole, when no larger than this
PEEK_ROWS = 20  # rows whose columns are gathered


@dataclass(frozen=True, slots=True)
class Peek:
    """The columns read (None when they cannot be known cheaply, or the head does not parse:
    loading reports that), and whether they are those of every row (`complete`)."""

    columns: frozenset[str] | None
    complete: bool = False


def peek(loader: str, path: Path, options: Mapping[str, Any]) -> Peek:
    """The columns of the data file `path` for the loader `loader` (`csv`, `jsonl` or `json`).
    Raises OSError when it cannot be opened (FileNotFoundError, IsADirectoryError, ...)."""
    with open(path, "rb") as f:
        head = f.read(PEEK_JSON_BYTES + 1 if loader == "json" else PEEK_BYTES + 1)
    whole = len(head) <= (PEEK_JSON_BYTES if loader == "json" else PEEK_BYTES)
    text = _decode(head if whole else head[:head.rfind(b"\n") + 1])
    if text is None:
        return Peek(None)
    if loader == "csv":
        return _csv(text, options.get("delimiter", "\t" if path.suffix.lower() == ".tsv" else ","))
    if loader == "jsonl":
        return _rows([line for line in text.split("\n") if line.strip()], whole)
    if loader == "json" and whole:
        return _json(text, options.get("key"))
    return Peek(None)


def _decode(data: bytes) -> str | None:
    try:
        return codecs.decode(data.removeprefix(codecs.BOM_UTF8), "utf-8")
    except UnicodeDecodeError:
        return None


def _csv(text: str, delimiter: str) -> Peek:
    if len(delimiter) != 1:
        return Peek(None)
    try:
        for cells in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            if cells and not (len(cells) == 1 and not cells[0].strip()):
                return Peek(frozenset(c.strip() for c in cells), complete=True)
    except csv.Error:
        pass
    return Peek(None)


def _rows(lines: list[str], whole: bool) -> Peek:
    read = lines if whole else lines[:PEEK_ROWS]
    columns: set[str] = set()
    for line in read:
        try:
            row = json.loads(line)
        except ValueError:
            return Peek(None)
        if not isinstance(row, dict):
            return Peek(None)
        columns.update(row)
    return Peek(frozenset(columns), complete=whole) if read else Peek(None)


def _json(text: str, key: object) -> Peek:
    try:
        doc = json.loads(text)
    except ValueError:
        return Peek(None)
    for part in key.split(".") if isinstance(key, str) else ():
        if not isinstance(doc, dict) or part not in doc:
            return Peek(None)
        doc = doc[part]
    if not isinstance(doc, list) or not doc or not all(isinstance(row, dict) for row in doc):
        return Peek(None)
    return Peek(frozenset(k for row in doc for k in row), complete=True)
