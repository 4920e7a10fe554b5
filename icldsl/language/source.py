"""Source files and spans: offsets in a text, and their lines and columns."""

from __future__ import annotations

import bisect
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..paths import read_limited, read_stream

_NEWLINE = re.compile("\n")
MAX_BYTES = 4 * 2**20  # an .icl file (or one it imports): far more than a program needs


@dataclass(frozen=True, slots=True)
class Span:
    """A range of characters `[start, end)` in the file named `file`.

    `line` and `column` (both 1-based) locate `start`, for messages and dumps.
    """

    file: str
    start: int
    end: int
    line: int
    column: int

    def __repr__(self) -> str:
        return f"@{self.line}:{self.column}"


@dataclass(frozen=True, slots=True)
class Source:
    """The text of one `.icl` file and the offsets where its lines start."""

    name: str
    text: str
    bad_byte: tuple[int, int] | None = None  # (offset in `text`, byte) of the first byte that was not UTF-8
    _line_starts: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        starts = [0, *(match.end() for match in _NEWLINE.finditer(self.text))]
        object.__setattr__(self, "_line_starts", tuple(starts))

    @classmethod
    def from_path(cls, path: str | Path) -> "Source":
        """Read a file as UTF-8; OSError (EFBIG) for one larger than MAX_BYTES, read no further.

        Bytes that are not UTF-8 become U+FFFD and the first is kept in `bad_byte`, so an
        editor still gets a text to work on and the parser reports the byte where it is."""
        return cls._decoded(str(path), read_limited(path, MAX_BYTES))

    @classmethod
    def from_stream(cls, name: str, stream: BinaryIO) -> "Source":
        """Read a binary stream (such as standard input) to its end, as `from_path` reads a file."""
        return cls._decoded(name, read_stream(stream, MAX_BYTES))

    @classmethod
    def _decoded(cls, name: str, data: bytes) -> "Source":
        try:
            return cls(name, data.decode("utf-8"))
        except UnicodeDecodeError as exc:
            offset = len(data[:exc.start].decode("utf-8"))  # the bytes before the first bad one are UTF-8
            return cls(name, data.decode("utf-8", errors="replace"), (offset, data[exc.start]))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    def position(self, offset: int) -> tuple[int, int]:
        """1-based (line, column) of a character offset."""
        offset = max(0, min(offset, len(self.text)))
        index = bisect.bisect_right(self._line_starts, offset) - 1
        return index + 1, offset - self._line_starts[index] + 1

    def offset(self, line: int, column: int) -> int:
        """The character offset of a 1-based (line, column), clamped to the text (inverse of `position`)."""
        line = max(1, min(line, len(self._line_starts)))
        start = self._line_starts[line - 1]
        end = self._line_starts[line] - 1 if line < len(self._line_starts) else len(self.text)
        return start + max(0, min(column - 1, end - start))

    def line_text(self, line: int) -> str:
        """The text of a 1-based line, without its newline."""
        start = self._line_starts[line - 1]
        end = self.text.find("\n", start)
        return self.text[start:] if end < 0 else self.text[start:end]

    def span(self, start: int, end: int) -> Span:
        line, column = self.position(start)
        return Span(self.name, start, end, line, column)
