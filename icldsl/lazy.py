"""Packages whose public names load with their module on first use, so that importing the
package (or one light module in it, which runs the package's `__init__` first) costs nothing.

    __getattr__, __dir__ = exports(__name__, {"Name": "submodule", ...})
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # not typing's: importing typing is most of what this package's import would cost
if TYPE_CHECKING:
    from typing import Any, Callable, Mapping


def exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's `__getattr__` and `__dir__`: `names` maps each public name to the
    submodule (relative to `package`) that defines it; a name, once loaded, is kept."""

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f".{names[name]}", package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names})

    return __getattr__, __dir__
