"""JSON text as icldsl reads it: artifacts, data files, checkpoints.

Stricter than `json.loads` in what can hurt later: `NaN`, `Infinity` and numbers too large
for a float are refused (they cannot be written back as JSON, nor compared), and so is
nesting deeper than MAX_DEPTH (Python's parser would raise RecursionError, and every
pass that walks the value would too). Errors carry the line and column.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 100  # arrays and objects inside each other; recursive models nest far less

# Strings as runs between escapes ("unrolled"), the closing quote optional: an unterminated
# string is read to the end once (json.loads then says where it starts) instead of being tried
# again from every quote inside it, which made `"` followed by many `\"` quadratic. Nothing in
# the pattern can match in two ways, so it never backtracks: linear time on any text.
_SCAN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?|[\[{]|[\]}]|-?Infinity|NaN', re.DOTALL)


class JSONTextError(ValueError):
    """Text that is not JSON icldsl accepts; `line` and `column` (1-based) say where, when known."""

    def __init__(self, message: str, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message if line is None else f"{message} (line {line}, column {column})")
        self.reason, self.line, self.column = message, line, column


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]}{'...' if len(text) > 20 else ''} is too large for a float")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(text: str) -> Any:
    """The value of `text`; JSONTextError for invalid JSON, NaN/Infinity, overlarge numbers or
    nesting deeper than MAX_DEPTH."""
    if text.count("[") + text.count("{") <= MAX_DEPTH and "NaN" not in text and "Infinity" not in text:
        return _parse(text)  # it cannot nest too deep nor hold those: the scan would find nothing
    depth = 0
    for match in _SCAN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise JSONTextError(f"nested more than {MAX_DEPTH} levels deep", *_position(text, match.start()))
        elif token in ("]", "}"):
            depth -= 1
        elif token[0] != '"':
            raise JSONTextError(f"{token.lstrip('-')} is not a JSON number", *_position(text, match.start()))
    return _parse(text)


def _parse(text: str) -> Any:
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JSONTextError(exc.msg, exc.lineno, exc.colno) from None
    except ValueError as exc:  # an overlarge number, or an integer beyond Python's digit limit
        raise JSONTextError(str(exc)) from None



# Made once: json.loads with hooks makes a decoder per call (2 us of a row of `icldsl run`).
_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_refuse_constant)
