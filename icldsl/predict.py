"""Predicting over a stream of inputs: what `icldsl run ARTIFACT --input rows.jsonl
--output preds.jsonl` does.

Rows are read one at a time from JSONL or CSV (a file or stdin) and validated against
the program's input model; `Program.map` runs them with a bound on those in flight,
so memory stays flat however long the input. Each row becomes one JSON line of the
output, in the order rows finish: `{"row": 3, "output": {...}}` or `{"row": 3,
"error": "..."}` (`row` counts from 1; `"id"` follows it with `id_field`). A line is
written whole by one `write` to a file opened for appending, so a run that is
interrupted leaves no torn line (one torn by a crash of the machine is cut off when
the file is opened again), and running again skips every row the file already holds.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ValidationError

from .datasets.base import DataError
from .datasets.rows import field_names, summarize, text_cells
from .paths import write_atomic
from .runtime.program import Program

Format = Literal["jsonl", "csv"]

_encode = json.JSONEncoder(ensure_ascii=False).encode  # an output line; one encoder for all of them


def input_format(path: str, given: str | None) -> Format:
    """The format of an input: as given, else from the file's suffix (stdin: JSONL)."""
    if given is not None:
        return given  # type: ignore[return-value]
    suffix = Path(path).suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json", "") or path == "-":
        return "jsonl"
    raise DataError(f"cannot tell the format of {path} from its suffix; name it with --format jsonl or csv")


@dataclass(frozen=True, slots=True)
class Row:
    """One input row: its number (from 1), where it starts in the file, its id (`id_field`),
    and either its values (validated) or why it cannot run."""

    number: int
    line: int
    id: Any
    values: BaseModel | None
    problem: str | None = None


def read_rows(stream: IO[str], fmt: Format, model: type[BaseModel], *, name: str,
              id_field: str | None = None, delimiter: str | None = None) -> Iterator[Row]:
    """The rows of `stream` one at a time, each validated into `model` (its problem
    recorded otherwise). DataError before the first row for a file that cannot be read
    at all: no rows, or a CSV header that lacks a column the model needs."""
    rows = _jsonl(stream, name) if fmt == "jsonl" else _csv(stream, name, model, delimiter or
                                                            ("\t" if name.lower().endswith(".tsv") else ","))
    empty = True
    for number, (line, values, problem) in enumerate(rows, start=1):
        empty = False
        key = values.get(id_field) if values is not None and id_field else None
        if problem is not None:
            yield Row(number, line, key, None, problem)
            continue
        try:
            yield Row(number, line, key, model.model_validate(text_cells(values, model) if fmt == "csv" else values))
        except ValidationError as exc:
            yield Row(number, line, key, None, f"line {line}: input {summarize(exc)}")
    if empty:
        raise DataError("no rows: the input is empty", file=name)


def _jsonl(stream: IO[str], name: str) -> Iterator[tuple[int, dict | None, str | None]]:
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield line, None, f"line {line} is not JSON: {exc.msg} (column {exc.colno})"
            continue
        if not isinstance(value, dict):
            yield line, None, f"line {line} is not a JSON object"
            continue
        yield line, value, None


def _csv(stream: IO[str], name: str, model: type[BaseModel],
         delimiter: str) -> Iterator[tuple[int, dict | None, str | None]]:
    reader = csv.reader(stream, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, None, f"line {start} is not valid CSV: {exc}"
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not cells or (len(cells) == 1 and not cells[0].strip()):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            missing = [f for f, info in zip(field_names(model), model.model_fields.values())
                       if info.is_required() and f not in header]
            if missing:
                raise DataError(f"no column for input field '{missing[0]}' (columns: {', '.join(header)}); the "
                                "header must name every field the input needs", file=name, line=line)
            continue
        if len(cells) != len(header):
            yield line, None, f"line {line} has {len(cells)} cells, the header {len(header)}"
            continue
        yield line, dict(zip(header, cells)), None


def count_rows(path: Path, fmt: Format) -> int:
    """About how many rows a file holds (its non-blank lines, less a CSV header), for a
    progress bar; it reads the file once, fast."""
    lines = 0
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            lines += chunk.count(b"\n")
        if f.tell() and chunk and not chunk.endswith(b"\n"):  # noqa: B023 (the last chunk)
            lines += 1
    return max(lines - (fmt == "csv"), 0)


class PredictionsFile:
    """The output: one JSON line per row, appended; what it already holds, by row number.

    `path` "-" writes to `stream` (stdout) and holds nothing yet. A file is opened for
    appending; a last line without its newline (a crash mid-write) is cut off first.
    With `retry_failed`, the rows that failed are dropped from the file (rewritten
    whole, atomically), so they run again.
    """

    def __init__(self, path: str, *, stream: IO[bytes] | None = None, retry_failed: bool = False) -> None:
        self.path = path
        self.done: set[int] = set()  # rows with an output
        self.failed: set[int] = set()  # rows with an error
        self.cut = 0  # bytes of a torn last line removed
        if path == "-":
            assert stream is not None
            self._fd, self._stream = None, stream
            return
        self._stream = None
        file = Path(path)
        if file.exists():
            self._read(file, retry_failed)
        self._fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _read(self, file: Path, retry_failed: bool) -> None:
        size, kept = file.stat().st_size, 0
        succeeded: list[bytes] = []  # the lines kept by retry_failed
        with file.open("rb") as f:
            for number, raw in enumerate(f, start=1):
                if not raw.endswith(b"\n"):
                    break  # torn: cut below
                kept += len(raw)
                try:
                    record = json.loads(raw)
                    row = record["row"]
                    succeeded_row = "output" in record
                except (ValueError, KeyError, TypeError):
                    raise DataError(f"line {number} is not a prediction of `icldsl run`; write the predictions "
                                    "to another file", file=self.path) from None
                (self.done if succeeded_row else self.failed).add(row)
                if retry_failed and succeeded_row:
                    succeeded.append(raw)
        if kept < size:
            self.cut = size - kept
            os.truncate(file, kept)
        self.failed -= self.done
        if retry_failed and self.failed:
            write_atomic(file, b"".join(succeeded).decode())
            self.failed.clear()

    def holds(self, row: int) -> bool:
        return row in self.done or row in self.failed

    def write(self, row: int, *, output: dict | None = None, error: str | None = None, id: Any = None) -> None:
        """Append one row's line in a single write."""
        record: dict[str, Any] = {"row": row}
        if id is not None:
            record["id"] = id
        if error is None:
            record["output"] = output
            self.done.add(row)
        else:
            record["error"] = error
            self.failed.add(row)
        data = (_encode(record) + "\n").encode()
        if self._fd is None:
            assert self._stream is not None
            self._stream.write(data)
            self._stream.flush()
            return
        while data:
            data = data[os.write(self._fd, data):]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass(slots=True)
class RunSummary:
    """What a run did: rows it ran (`succeeded`, `failed`), rows the output already held
    (`skipped`), and why it stopped early, if it did."""

    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    stopped: str | None = None
    first_errors: list[str] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return self.succeeded + self.failed


Progress = Callable[[int, int], None]  # (rows written this run, of them failed)


async def run_rows(program: Program, rows: Iterator[Row], out: PredictionsFile, *, concurrency: int,
                   stop_after: int = 0, progress: Progress | None = None) -> RunSummary:
    """Run every row `out` does not hold yet and write its line; a row that cannot run
    is written as its error. With `stop_after`, stop once that many rows in a row failed
    on their prediction (an LM that cannot be reached fails every row: better to stop
    and say so than to write a failure per row); rows in flight then are not written,
    and a new run does them."""
    summary = RunSummary()
    streak = 0

    def record(row: Row, output: dict | None, error: str | None) -> None:
        out.write(row.number, output=output, error=error, id=row.id)
        if error is None:
            summary.succeeded += 1
        else:
            summary.failed += 1
            if len(summary.first_errors) < 3:
                summary.first_errors.append(f"row {row.number}: {error}")
        if progress is not None:
            progress(summary.ran, summary.failed)

    # `map` numbers the inputs it takes from 0: keep the rows in flight by that number.
    taken = 0
    order: dict[int, Row] = {}

    def numbered() -> Iterator[BaseModel]:
        nonlocal taken
        for row in rows:
            if out.holds(row.number):
                summary.skipped += 1
                continue
            if row.values is None:
                record(row, None, row.problem)
                continue
            order[taken] = row
            taken += 1
            yield row.values

    predictions = program.map(numbered(), concurrency=concurrency)
    try:
        async for prediction in predictions:
            row = order.pop(prediction.index)
            record(row, prediction.output, prediction.error)
            streak = streak + 1 if prediction.error is not None else 0
            if stop_after and streak >= stop_after:
                summary.stopped = (f"the last {streak} rows all failed (row {row.number}: {prediction.error})")
                break
    finally:
        await predictions.aclose()
    return summary

