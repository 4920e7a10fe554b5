"""The words a program spec is made of, in one place: the kinds of step, the primitive
types, the constraints each type takes (with the type of their value), the options that
may only come from the environment, and how a Python function is named.

The IR, the checker (on a file), the compiler, the language server, the runtime (pydantic
models) and `spec_check` (on a spec read from an artifact) read these tables; none keeps
its own (tests/language/test_vocabulary.py holds the grammar's step keywords to them). It
imports nothing of icldsl, so the IR can sit on it.
"""

from __future__ import annotations

import re
from typing import Mapping

# What an LM step does (`a = KIND Model from ...`); the grammar's keywords for them are checked
# against this by a test.
STEP_KINDS = ("generate", "chain_of_thought", "decide", "agent")

# A field's primitive types, by the name a file and a spec write them, with their Python type.
PRIMITIVE_TYPES: Mapping[str, type] = {"str": str, "int": int, "float": float, "bool": bool}

# The constraints each type takes (`str(max_length: 80)`, `list[T](min_items: 1)`), with the type
# of their value (an option type, as `options.matches` and `options.fits` read it).
CONSTRAINTS: Mapping[str, Mapping[str, type]] = {
    "int": {"min": int, "max": int},
    "float": {"min": float, "max": float},
    "str": {"min_length": int, "max_length": int, "pattern": str},
    "list": {"min_items": int, "max_items": int},
}
# Pairs of constraints of which the first may not exceed the second, and those that count
# (characters, items) and so cannot be negative.
CONSTRAINT_RANGES = (("min", "max"), ("min_length", "max_length"), ("min_items", "max_items"))
COUNTS = ("min_length", "max_length", "min_items", "max_items")

# Options of an `lm` or `embedding` that may only come from the environment (`env("NAME")` in a
# file, `{"env": NAME}` in a spec): a key written in a file would travel with it.
SECRET_OPTIONS = ("api_key",)

# A Python function as a tool or a `python` reward names it: "package.module:function".
FUNCTION_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


def function_ref_problem(ref: str) -> str | None:
    """Why `ref` does not name a function as "module:function"; None when it does."""
    return None if FUNCTION_REF.match(ref) else f"{ref!r} is not of the form \"module:function\""
