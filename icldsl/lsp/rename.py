"""Renaming a name the file defines: its definition and every use the index knows (symbols.py).

Fields are not renamed: masks (`in_mask: ["answer"]`), `map:` entries and the data's columns
name them in strings, and a field's name is the data's column. Names defined in an imported
file are not renamed either: its other importers are not known here.
"""

from __future__ import annotations

import re

from ..language.diagnostics import CheckError
from ..language.parser import _literals, parse
from ..language.source import Source, Span
from ..language.vocabulary import PRIMITIVE_TYPES
from .symbols import NAMESPACE, Index, Occurrence

RENAMED = ("model", "lm", "embedding", "tool", "program", "input", "step", "data")
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Refused(ValueError):
    """Why this name cannot be renamed (to that name)."""


def renamable(found: Occurrence | None, source: Source) -> Occurrence:
    """The occurrence itself when its symbol can be renamed, else Refused."""
    if found is None or found.symbol.span is None:
        raise Refused("nothing to rename here: put the cursor on a name the file defines")
    if found.symbol.kind not in RENAMED:
        raise Refused(f"a {found.symbol.kind} is not renamed: strings in masks, `map:` and the data name it"
                      if found.symbol.kind == "field" else f"`{found.symbol.name}` is not a name the file defines")
    if found.symbol.span.file != source.name:
        raise Refused(f"`{found.symbol.name}` is defined in {found.symbol.span.file}: rename it there")
    return found


def rename(index: Index, found: Occurrence, new: str) -> list[Span]:
    """The spans to replace with `new` (every occurrence of the symbol in the file); Refused when
    `new` is not a name, names something already, or would not parse."""
    symbol = renamable(found, index.source).symbol
    if not NAME.match(new):
        raise Refused(f"`{new}` is not a name: letters, digits and `_`, not starting with a digit")
    if (NAMESPACE.get(symbol.kind, symbol.kind), symbol.scope, new) in index.symbols and new != symbol.name:
        raise Refused(f"`{new}` is already a {symbol.kind if symbol.kind not in NAMESPACE else 'step or input'} "
                      "name here")
    if new in {word for word in _literals().values() if word.isidentifier()}:
        raise Refused(f"`{new}` is a keyword; it cannot be a name here")
    if symbol.kind == "model" and new in PRIMITIVE_TYPES:
        raise Refused(f"`{new}` is a built-in type")
    spans = sorted({o.span for o in index.references(symbol)}, key=lambda s: s.start)
    text = index.source.text
    for span in reversed(spans):
        text = text[:span.start] + new + text[span.end:]
    if not _parses(text, index.source.name) and _parses(index.source.text, index.source.name):
        raise Refused(f"`{new}` cannot be a name here (a keyword?)")
    return spans


def _parses(text: str, name: str) -> bool:
    try:
        parse(Source(name, text))
    except CheckError:
        return False
    return True
