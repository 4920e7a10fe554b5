"""The regular expressions of `str(pattern: "...")`, judged by the engine that will run them.

A field's pattern is enforced by pydantic-core, whose engine is Rust's `regex` crate (no
look-around or back-references, and a limit on the size of the compiled expression), not
by Python's `re`: a pattern `re` accepts may not build (`^(?=a)(a+)+$`, `(a{1000}){1000}`)
and one it refuses may (`\\pL+`). So the checker and the artifact reader ask pydantic-core
itself; it is imported only when a file has a pattern, and `check` of the others stays light.
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1024)
def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot be a field's pattern, in a few words (where in the pattern, when
    the engine says); None when it can."""
    from pydantic_core import SchemaError, SchemaValidator

    try:
        SchemaValidator({"type": "str", "pattern": pattern})
    except SchemaError as exc:
        return _reason(str(exc))
    return None


def _reason(text: str) -> str:
    """The engine's message without pydantic's wrapping. A parse error reads
    `regex parse error:\\n    PATTERN\\n    ^^^\\nerror: WHAT`: WHAT, at the caret's character."""
    lines = text.splitlines()
    last = lines[-1].strip() if lines else text
    what = last.removeprefix("error: ").removeprefix("SchemaError: ").rstrip(".")
    if last.startswith("error: ") and len(lines) >= 3 and "^" in lines[-2]:
        pattern_line, caret_line = lines[-3], lines[-2]
        indent = len(pattern_line) - len(pattern_line.lstrip(" "))
        position = caret_line.index("^") - indent + 1
        if position >= 1:
            return f"{what} (at character {position})"
    return what
