"""A lenient reader for the JSON objects LMs write.

Clean JSON is read as is. Otherwise the reader looks for an object inside the
text (in a markdown fence first, then anywhere, skipping prose around it) and
reads it with a forgiving grammar: single-quoted strings, unquoted keys,
trailing or missing commas, Python's True/False/None, `//` and `/* */` comments, raw
newlines and stray quotes inside strings, bare words as strings, and a text
that ends early (an answer cut by max_tokens): open strings, arrays and
objects are closed, and a member left without a value, or whose number or
word runs into the end (it may be cut short), is dropped. What it reads
still has to validate against the step's model; this only gets it that far.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 64
MAX_STARTS = 16  # `{` positions tried per candidate text

_FENCE = re.compile(r"```[ \t]*[A-Za-z0-9_-]*[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_KEY = re.compile(r"[A-Za-z_$][\w$.-]*")
_LITERALS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


_LENIENT = json.JSONDecoder(strict=False)  # control characters inside strings pass; one for every answer


class RepairError(ValueError):
    """The text holds no JSON object, even read leniently."""


def read_object(text: str) -> dict[str, Any]:
    """The JSON object in an LM's answer, repaired when it is not clean JSON."""
    try:
        value = _LENIENT.decode(text)
    except (json.JSONDecodeError, RecursionError):  # nested past Python's limit: read below, to MAX_DEPTH
        pass
    else:
        if isinstance(value, dict):
            return value
    for candidate in (*(m.group(1) for m in _FENCE.finditer(text)), text):
        starts = [i for i, c in enumerate(candidate) if c == "{"][:MAX_STARTS]
        for start in starts:
            try:
                value = _Reader(candidate, start).value(0)
            except _Fail:
                continue
            if isinstance(value, dict):
                return value
    excerpt = text if len(text) <= 200 else text[:200] + "..."
    raise RepairError(f"no JSON object in the answer: {excerpt!r}")


class _Fail(Exception):
    """This start position does not lead to a value."""


# A number or word that runs into the end of the text may be cut short (`12` of
# `125`, `tr` of `true`): it is dropped rather than read wrong.
_CUT = object()


class _Reader:
    """A forgiving recursive-descent reader over `text` from `pos`; the end of the
    text closes whatever is open."""

    def __init__(self, text: str, pos: int) -> None:
        self.text, self.pos = text, pos
        self._comment_end = (len(text), -1)  # (searched from, found): the next `*/`, found once

    def _close_of_comment(self, start: int) -> int:
        """Where the first `*/` at or after `start` is (-1: none). Remembered: each stray quote in
        a string looks past a comment after it, and finding the same far `*/` again for each
        made text such as `" /*` repeated, then `*/`, quadratic."""
        searched, found = self._comment_end
        if not (searched <= start and (found < 0 or found >= start)):
            found = self.text.find("*/", start)
            self._comment_end = (start, found)
        return found

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self) -> bool:
        """Skip whitespace and comments; whether a newline was among them."""
        newline = False
        while not self.at_end():
            c = self.text[self.pos]
            if c in " \t\r\n":
                newline |= c == "\n"
                self.pos += 1
            elif self.text.startswith("//", self.pos):
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            elif self.text.startswith("/*", self.pos):
                end = self._close_of_comment(self.pos + 2)
                self.pos = len(self.text) if end < 0 else end + 2
            else:
                break
        return newline

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _Fail
        self.skip()
        c = self.peek()
        if c == "{":
            return self.object(depth)
        if c == "[":
            return self.array(depth)
        if c in "\"'":
            return self.string()
        match = _NUMBER.match(self.text, self.pos)
        if match and self._ends_value(match.end()):
            self.pos = match.end()
            if self.at_end():
                return _CUT
            number = match.group().lstrip("+")
            try:
                return int(number) if re.fullmatch(r"-?\d+", number) else float(number)
            except ValueError:
                raise _Fail from None
        return self.bare()

    def object(self, depth: int) -> dict[str, Any]:
        self.pos += 1  # {
        out: dict[str, Any] = {}
        while True:
            self.skip()
            c = self.peek()
            if c == "" or c == "}":
                self.pos += 1
                return out
            if c == ",":
                self.pos += 1
                continue
            key = self.key()
            self.skip()
            if self.at_end():
                return out  # cut before the colon: drop the key
            if self.peek() not in ":=":
                raise _Fail
            self.pos += 1
            self.skip()
            if self.at_end():
                return out  # cut before the value: drop the member
            value = self.value(depth + 1)
            if value is not _CUT:
                out[key] = value

    def array(self, depth: int) -> list[Any]:
        self.pos += 1  # [
        out: list[Any] = []
        while True:
            self.skip()
            c = self.peek()
            if c == "" or c == "]":
                self.pos += 1
                return out
            if c == ",":
                self.pos += 1
                continue
            if c == "}":
                raise _Fail
            value = self.value(depth + 1)
            if value is not _CUT:
                out.append(value)

    def key(self) -> str:
        if self.peek() in "\"'":
            return self.string()
        match = _KEY.match(self.text, self.pos)
        if not match:
            raise _Fail
        self.pos = match.end()
        return match.group()

    def string(self) -> str:
        """A quoted string. A quote of the opening kind ends it only when what follows
        could follow a string (`, } ] :`, a newline, the end); otherwise it is text."""
        quote = self.text[self.pos]
        self.pos += 1
        parts: list[str] = []
        while not self.at_end():
            c = self.text[self.pos]
            if c == "\\":
                esc = self.text[self.pos + 1 : self.pos + 2]
                if esc == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", self.text[self.pos + 2 : self.pos + 6]):
                    parts.append(chr(int(self.text[self.pos + 2 : self.pos + 6], 16)))
                    self.pos += 6
                else:
                    parts.append(_ESCAPES.get(esc, esc))
                    self.pos += 2
                continue
            self.pos += 1
            if c == quote:
                after = self.pos
                newline = self.skip()
                if newline or self.at_end() or self.peek() in ",}]:":
                    return _join_surrogates("".join(parts))
                self.pos = after
            parts.append(c)
        return _join_surrogates("".join(parts))  # cut inside the string: close it

    def bare(self) -> Any:
        """A literal (true, None, ...) or an unquoted word, up to the next delimiter."""
        start = self.pos
        while not self.at_end() and self.text[self.pos] not in ",}]\n":
            self.pos += 1
        word = self.text[start : self.pos].strip()
        if not word or word[0] in "{[:":
            raise _Fail
        if self.at_end():
            return _CUT
        return _LITERALS.get(word, word)

    def _ends_value(self, end: int) -> bool:
        """Whether only spaces stand between `end` and a delimiter (or the end of the text)."""
        pos, self.pos = self.pos, end
        newline = self.skip()
        ends = newline or self.at_end() or self.peek() in ",}]"
        self.pos = pos
        return ends


def _join_surrogates(text: str) -> str:
    """Combine `\\ud83d\\ude00`-style surrogate pairs read one escape at a time."""
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        return text
