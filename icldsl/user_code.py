"""A user's own Python function, named "module:function" in a `.icl` file."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import Error

FORM = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class UserCodeError(Error):
    """A "module:function" that cannot be imported or is not a function."""


def load_function(ref: str, search_path: Sequence[Path] = ()) -> Callable[..., Any]:
    """Import `ref`, looking first in `search_path` (such as the .icl file's folder), then `sys.path`.

    Whatever importing the module raises (a missing module, a syntax error, an
    exception at import time) becomes a UserCodeError that says so.
    """
    if not FORM.match(ref):
        raise UserCodeError(f"{ref!r} is not of the form \"module:function\"")
    module_name, _, function_name = ref.partition(":")
    extra = [str(p) for p in search_path if str(p) not in sys.path]
    sys.path[:0] = extra
    importlib.invalidate_caches()  # a module written since the last import is found
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a user's module: whatever importing it raises is reported
        raise UserCodeError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    finally:
        for entry in extra:
            sys.path.remove(entry)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UserCodeError(f"module {module_name!r} has no function {function_name!r}")
    return function
