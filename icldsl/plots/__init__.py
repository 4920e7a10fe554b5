"""Pictures of a program and its training: the program graph (graph.py), the history per
epoch, the test scores over repeated runs and untrained beside trained (charts.py), all
saved the same way (canvas.py).

Everything is drawn from the artifact document (or a compiled program's spec), so
`icldsl plot` redraws what `icldsl fit` drew; this module turns an artifact into its
figures and the files beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib import rc_context
from matplotlib.figure import Figure

from ..language.specs import ProgramSpec
from ..paths import stem
from ..runtime.state import StepState
from ..training.training_record import TrainingRecord
from .canvas import AS_TEXT, DPI, render, save
from .charts import TRAINED, UNTRAINED, comparison_plot, history_plot, metric_names, runs_plot
from .graph import KIND_COLOURS, kind_colour, program_graph

__all__ = ["PLOTS", "DPI", "KIND_COLOURS", "TRAINED", "UNTRAINED", "comparison_plot", "figures", "history_plot",
           "kind_colour", "metric_names", "plot_paths", "program_graph", "render", "runs_plot", "save", "stem",
           "write_all"]

PLOTS = ("graph", "comparison", "runs", "history")  # what `figures` draws, in report order


@rc_context(AS_TEXT)
def figures(doc: Mapping[str, Any]) -> dict[str, Figure]:
    """The plots of an artifact document, by name, in PLOTS' order: every one but "runs"
    when the test set was scored once (one dot per program says nothing the comparison
    does not)."""
    spec = ProgramSpec.from_json(doc["program"])
    states = {path: StepState.from_json(s) for path, s in doc.get("states", {}).items()}
    record = TrainingRecord.of_artifact(doc)
    history = record.history
    drawn = {
        "graph": lambda: program_graph(spec, states),
        "comparison": lambda: comparison_plot(record.scores, program=spec.name),
        "runs": lambda: runs_plot(record.scores, program=spec.name),
        "history": lambda: history_plot(history.history, program=spec.name, initial=history.initial,
                                        best_epoch=history.best_epoch),
    }
    return {name: drawn[name]() for name in PLOTS if name != "runs" or record.run_count > 1}


def plot_paths(artifact_path: str | Path, directory: str | Path | None = None, fmt: str = "png") -> dict[str, Path]:
    """Where the plots of an artifact go: `<dir>/<stem>.<plot>.<fmt>`, by default beside it."""
    base = Path(directory) if directory is not None else Path(artifact_path).parent
    return {name: base / f"{stem(artifact_path)}.{name}.{fmt}" for name in PLOTS}


def write_all(doc: Mapping[str, Any], paths: Mapping[str, Path]) -> dict[str, bytes]:
    """Draw the plots of an artifact document (`figures`) into `paths` (by plot name; the
    suffix picks the format) and remove the file of a plot it does not draw, so none is
    left from an earlier fit; returns each drawn plot's PNG bytes, for a report to inline."""
    pngs = {}
    drawn = figures(doc)
    for name, path in paths.items():
        if name not in drawn:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        png = render(drawn[name], "png")
        path.write_bytes(png if path.suffix.lower() == ".png" else render(drawn[name], path.suffix.lower().lstrip(".")))
        pngs[name] = png
    return pngs
