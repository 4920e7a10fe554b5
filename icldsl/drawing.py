"""Whether plots can be drawn here. matplotlib comes with the `report` extra, which a
deployment that only loads and runs artifacts does without: `fit` then writes the
artifact alone and says how to get its plots, and `graph` and `plot` refuse with that."""

from __future__ import annotations

import importlib.util

from .errors import Error

INSTALL = "pip install 'icldsl[report]'"


class DrawingUnavailable(Error):
    """Plots were asked for where matplotlib is not installed."""


def available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def missing_note(what: str) -> str:
    """The line that says `what` was not drawn and how to get it."""
    return f"{what}: matplotlib is not installed; {INSTALL} adds it"


def require(what: str) -> None:
    if not available():
        raise DrawingUnavailable(missing_note(f"cannot draw {what}"))
