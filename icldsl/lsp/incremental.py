"""Parse a file again after an edit, reading anew only the top-level items whose text changed.

A file is a sequence of items (`start: _item*`), and the parser is in the same state before
each one, so the file splits into pieces at lines where an item keyword starts outside any
bracket, and each piece parses alone. A piece whose text is unchanged is reused, its spans
moved to where it now sits. The result is the same as parsing the whole file: when a piece
does not parse alone, the text from that piece to the end is parsed as one, in place, so the
syntax error (or the items) are exactly the whole file's.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..language import ir
from ..language.diagnostics import CheckError
from ..language.parser import STRING_PATTERN, parse, read_prefix
from ..language.source import Source


@functools.cache
def _pieces_pattern() -> re.Pattern:
    """Strings and comments (skipped), brackets, and a line starting with an item keyword
    (the keywords the grammar accepts at the start of a file)."""
    keywords = sorted(text for kind, text in read_prefix("").accepts if kind == "keyword")
    return re.compile(STRING_PATTERN + r'|//[^\n]*|(?P<open>[\[{(])|(?P<close>[\]})])'
                      r"|(?P<item>\n[ \t]*(?=(?:" + "|".join(keywords) + r")\b))")


def item_starts(text: str) -> list[int]:
    """Offsets where the pieces of `text` start: 0, then each line start, outside brackets,
    whose first word is an item keyword."""
    starts, depth = [0], 0
    for match in _pieces_pattern().finditer(text):
        group = match.lastgroup
        if group == "open":
            depth += 1
        elif group == "close":
            depth = max(0, depth - 1)
        elif group == "item" and depth == 0:
            starts.append(match.start() + 1)  # after the newline
    return starts


@dataclass(frozen=True, slots=True)
class Parsed:
    """A file's items: every one that parsed, and all of them when `error` is None; `error` is
    the CheckError that parsing the whole file raises."""

    items: tuple[ir.Item, ...]
    error: CheckError | None

    def module(self, name: str) -> ir.Module:
        return ir.Module(name, self.items)


class IncrementalParser:
    """Parses successive versions of one file, keeping the pieces of the last version."""

    def __init__(self) -> None:
        # piece text -> (offset, line) where it was, and its items there (None: it does not parse alone)
        self._pieces: dict[str, tuple[int, int, tuple[ir.Item, ...] | None]] = {}

    def parse(self, source: Source) -> Parsed:
        text = source.text
        starts = item_starts(text)
        pieces: dict[str, tuple[int, int, tuple[ir.Item, ...] | None]] = {}
        items: list[ir.Item] = []
        first_failed: int | None = None
        parsed_before = 0  # how many items come before the first piece that failed
        for i, start in enumerate(starts):
            piece = text[start:starts[i + 1] if i + 1 < len(starts) else len(text)]
            line = source.position(start)[0]
            known = pieces.get(piece) or self._pieces.get(piece)
            if known is None:
                try:
                    known = (0, 1, parse(Source(source.name, piece)).items)
                except CheckError:
                    known = (0, 1, None)
            was_at, was_line, found = known
            if found is not None and (was_at, was_line) != (start, line):
                found = ir.moved(found, start - was_at, line - was_line)
            pieces[piece] = (start, line, found)
            if found is None:
                if first_failed is None:
                    first_failed, parsed_before = start, len(items)
            else:
                items.extend(found)
        self._pieces = pieces
        if first_failed is None:
            return Parsed(tuple(items), None)
        try:
            rest = _parse_in_place(source, first_failed)
        except CheckError as exc:
            return Parsed(tuple(items), exc)
        return Parsed((*items[:parsed_before], *rest), None)


def _parse_in_place(source: Source, start: int) -> tuple[ir.Item, ...]:
    """The items of `source.text[start:]` (which starts a line), with the spans and messages of
    the whole file: the text before it becomes white space with the same number of lines."""
    line = source.position(start)[0]
    padding = " " * (start - (line - 1)) + "\n" * (line - 1)
    return parse(Source(source.name, padding + source.text[start:])).items
