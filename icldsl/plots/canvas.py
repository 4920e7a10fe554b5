"""What every figure shares: the setting it is built and drawn under, and its saving as
PNG or SVG bytes on the Agg canvas (matplotlib's object API: no pyplot, no display, no
global backend switch)."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 110

# Every string is drawn as it is written: matplotlib would read `$...$` in a label, a name or
# a description as TeX-like mathtext, and fail on one that does not parse (an enum label
# `price_$_{low`). Text made while drawing (ticks, legends) reads the setting then too, so
# the figures are both built and rendered under it.
AS_TEXT = {"text.parse_math": False}


@rc_context(AS_TEXT)
def render(fig: Figure, fmt: str = "png") -> bytes:
    """The figure as PNG or SVG bytes (no timestamps, so the same figure gives the same bytes)."""
    buffer = io.BytesIO()
    metadata = {"Software": None} if fmt == "png" else {"Date": None, "Creator": None}
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format=fmt, dpi=DPI, metadata=metadata)
    return buffer.getvalue()


def save(fig: Figure, path: str | Path) -> Path:
    """Write the figure; the format follows the suffix (.png or .svg)."""
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"cannot draw {path.name}: use a .png or .svg file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(render(fig, fmt))
    return path
