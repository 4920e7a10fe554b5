"""Predicting over a stream of inputs: what `icldsl run ARTIFACT --input rows.jsonl
--output preds.jsonl` does.

Rows are read one at a time from JSONL or CSV (a file or stdin) and validated against
the program's input model; `Program.map` runs them with a bound on those in flight,
so memory stays flat however long the input. Each row becomes one JSON line of the
output, in the order rows finish: `{"row": 3, "output": {...}}` or `{"row": 3,
"error": "..."}` (`row` counts from 1; `"id"` follows it with `id_field`). A line is
written whole by one `write` to a file opened for appending, so a run that is
interrupted leaves no torn line (one torn by a crash of the machine, or cut short by a
full disk, is cut off when the file is opened again), and running again skips every row
the file already holds. A run holds an exclusive lock (flock) on its output file, so a
second run on the same file is refused (OutputBusy) instead of writing every row again.

A line of the input is read as bytes and at most MAX_ROW_BYTES of it: a longer one, one
that is not UTF-8, JSON nested deeper than `jsontext.MAX_DEPTH` or holding NaN is a bad
row with its message, and the run goes on.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import fcntl
import json
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ValidationError

from .datasets.base import DataError
from .datasets.rows import field_names, summarize, text_cells
from .errors import EXIT_BUSY, Error
from .jsontext import JSONTextError, loads
from .paths import BadEncoding, decode_utf8
from .runtime.program import Program

Format = Literal["jsonl", "csv"]

_encode = json.JSONEncoder(ensure_ascii=False).encode  # an output line; one encoder for all of them
MAX_ROW_BYTES = 8 * 2**20  # a line of the input; a longer one is a bad row, never read whole (docs/predicting.md)


class OutputError(Error):
    """An output that cannot be opened or written: a missing folder, a folder, a full disk."""


class OutputBusy(OutputError):
    """An output file another run is writing (it holds the file's lock)."""

    exit_code = EXIT_BUSY


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


def read_rows(stream: IO[bytes], fmt: Format, model: type[BaseModel], *, name: str,
              id_field: str | None = None, delimiter: str | None = None,
              max_row_bytes: int | None = None) -> Iterator[Row]:
    """The rows of the binary `stream` one at a time, each validated into `model` (its
    problem recorded otherwise: see the module's docstring). DataError before the first
    row for a file that cannot be read at all: no rows, or a CSV header that lacks a
    column the model needs. A line may hold `max_row_bytes` (default MAX_ROW_BYTES)."""
    lines = _Lines(stream, max_row_bytes or MAX_ROW_BYTES)
    rows = _jsonl(lines) if fmt == "jsonl" else _csv(lines, name, model, delimiter or
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


class BadLine(ValueError):
    """A line of the input that is no row: longer than the limit, or not UTF-8."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}{message}")
        self.line = line


class _Lines:
    """The lines of a binary stream as text, split on "\\n" only (as data files are), each
    read up to `limit` bytes: the rest of a longer one is skipped a megabyte at a time and
    the line raises BadLine, as does one that is not UTF-8; the next call goes on with the
    next line (so `csv.reader` can read from it). `line` is the number of the last line."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self.stream, self.limit, self.line = stream, limit, 0

    def __iter__(self) -> "_Lines":
        return self

    def __next__(self) -> str:
        raw = self.stream.readline(self.limit + 1)
        if not raw:
            raise StopIteration
        self.line += 1
        if len(raw) > self.limit and not raw.endswith(b"\n"):
            size = len(raw) + self._skip()
            raise BadLine(self.line, f" holds {size:,} bytes, more than a row may ({self.limit:,}); it was skipped")
        try:
            return decode_utf8(raw)
        except BadEncoding as exc:
            raise BadLine(self.line, f": {exc}") from None

    def _skip(self) -> int:
        skipped = 0
        while chunk := self.stream.readline(1 << 20):
            skipped += len(chunk)
            if chunk.endswith(b"\n"):
                break
        return skipped


def _jsonl(lines: _Lines) -> Iterator[tuple[int, dict | None, str | None]]:
    while True:
        try:
            text = next(lines)
        except StopIteration:
            return
        except BadLine as exc:
            yield exc.line, None, str(exc)
            continue
        line = lines.line
        if not text.strip():
            continue
        try:
            value = loads(text)
        except JSONTextError as exc:
            where = f" (column {exc.column})" if exc.column else ""
            yield line, None, f"line {line} is not JSON: {exc.reason}{where}"
            continue
        if not isinstance(value, dict):
            yield line, None, f"line {line} is not a JSON object"
            continue
        yield line, value, None


def _csv(lines: _Lines, name: str, model: type[BaseModel],
         delimiter: str) -> Iterator[tuple[int, dict | None, str | None]]:
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    header: list[str] | None = None
    start = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except BadLine as exc:  # the record it was part of is dropped with it
            yield exc.line, None, str(exc)
            start = lines.line + 1
            continue
        except csv.Error as exc:
            yield start, None, f"line {start} is not valid CSV: {exc}"
            start = lines.line + 1
            continue
        line, start = start, lines.line + 1
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

    `path` "-" writes to `stream` (stdout) and holds nothing yet. A regular file is opened
    for appending and locked (OutputBusy when another run holds it); a last line without
    its newline (a crash or a full disk mid-write) is cut off first. With `retry_failed`,
    the rows that failed are dropped from the file (rewritten whole, atomically, the lock
    kept), so they run again. Anything else (/dev/null, a pipe) is only written to.
    OutputError for a path that cannot be opened or written.
    """

    def __init__(self, path: str, *, stream: IO[bytes] | None = None, retry_failed: bool = False) -> None:
        self.path = path
        self.done: set[int] = set()  # rows with an output
        self.failed: set[int] = set()  # rows with an error
        self.cut = 0  # bytes of a torn last line removed
        self.written = 0  # lines written by this run
        if path == "-":
            assert stream is not None
            self._fd, self._stream = None, stream
            return
        self._stream = None
        self._fd = self._open()
        try:
            if stat.S_ISREG(os.fstat(self._fd).st_mode):
                self._lock()
                self._read(retry_failed)
        except BaseException:
            self.close()
            raise

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            if exc.errno == errno.EISDIR:
                raise OutputError(f"--output {self.path} is a folder: name a file, such as "
                                  f"{os.path.join(self.path, 'predictions.jsonl')}") from None
            if exc.errno == errno.ENOENT:
                raise OutputError(f"cannot write {self.path}: the folder {os.path.dirname(self.path) or '.'} does "
                                  "not exist; create it first") from None
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None

    def _lock(self) -> None:
        busy = (f"{self.path} is being written by another `icldsl run` (it holds the file's lock); wait for "
                "that run to end, or write to another file")
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise OutputBusy(busy) from None
        except OSError as exc:
            raise OutputError(f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            same = os.stat(self.path).st_ino == os.fstat(self._fd).st_ino
        except OSError:
            same = False
        if not same:  # replaced since it was opened (another run's --retry-failed): that run holds the new one
            raise OutputBusy(busy)

    def _read(self, retry_failed: bool) -> None:
        size, kept = os.fstat(self._fd).st_size, 0
        succeeded: list[bytes] = []  # the lines kept by retry_failed
        with open(os.dup(self._fd), "rb") as f:
            f.seek(0)
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
            os.ftruncate(self._fd, kept)
        self.failed -= self.done
        if retry_failed and self.failed:
            self._replace(b"".join(succeeded))
            self.failed.clear()

    def _replace(self, content: bytes) -> None:
        """Rewrite the file as `content`: a temporary file beside it, locked before it is
        renamed over it, then written to from here on (the old one's lock is let go last)."""
        import tempfile

        folder, name = os.path.split(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.fchmod(fd, stat.S_IMODE(os.fstat(self._fd).st_mode))
            while content:
                content = content[os.write(fd, content):]
            os.fsync(fd)
            os.replace(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
        os.close(self._fd)
        self._fd = fd

    def holds(self, row: int) -> bool:
        return row in self.done or row in self.failed

    def write(self, row: int, *, output: dict | None = None, error: str | None = None, id: Any = None) -> None:
        """Append one row's line in a single write; OutputError when it cannot be written."""
        record: dict[str, Any] = {"row": row}
        if id is not None:
            record["id"] = id
        if error is None:
            record["output"] = output
        else:
            record["error"] = error
        data = (_encode(record) + "\n").encode()
        try:
            if self._fd is None:
                assert self._stream is not None
                self._stream.write(data)
                self._stream.flush()
            else:
                while data:
                    data = data[os.write(self._fd, data):]
        except BrokenPipeError:
            raise  # standard output closed by its reader: the command line's to handle
        except OSError as exc:
            where = "standard output" if self._fd is None else self.path
            rows = f"{self.written} row{'s' if self.written != 1 else ''}"
            raise OutputError(f"cannot write to {where}: {exc.strerror}; the {rows} written by this run before "
                              "are kept (a line cut short is cut off when the file is opened again): "
                              "make room and run the same command again") from None
        (self.done if error is None else self.failed).add(row)
        self.written += 1

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # lets go of the lock
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

