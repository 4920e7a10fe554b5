"""Pictures of a program and its training: the program graph, the history per epoch,
the test scores over repeated runs, and untrained beside trained.

Everything is drawn from the artifact document (or a compiled program's spec), so
`icldsl plot` redraws what `icldsl fit` drew. Figures are built with matplotlib's
object API on the Agg canvas: no pyplot, no display, no global backend switch.

Over 500 lines because the four figures share one look (colours, sizes, fonts, the
untrained/trained pairing and the saving to PNG or SVG): split by figure, each module
would import the same helpers and the figures would drift apart.
"""

from __future__ import annotations

import dataclasses
import io
import textwrap
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib import rc_context
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.ticker import MaxNLocator

from .paths import stem
from .language.specs import ProgramSpec
from .runtime.state import StepState
from .training.metrics import count_text, direction, is_count

PLOTS = ("graph", "comparison", "runs", "history")  # what `figures` draws, in report order
DPI = 110

# Colours: the two states of a program, and step kinds (others get a stable colour by name).
UNTRAINED, TRAINED = "#9aa5b1", "#2f6fde"
TRAIN_LINE, VAL_LINE = "#2f6fde", "#e07b00"
KIND_COLOURS = {
    "generate": "#dbe8ff",
    "chain_of_thought": "#e6dcff",
    "decide": "#ffe7c7",
    "branch": "#d3f2ea",
    "agent": "#ffd9d9",
}
_SPARE_COLOURS = ("#e9f5c9", "#fde2f3", "#d8f0fb", "#f3e8d2", "#e2e2f7", "#dff3df")
_INPUT_COLOUR = "#eef0f3"

# Every string is drawn as it is written: matplotlib would read `$...$` in a label, a name or
# a description as TeX-like mathtext, and fail on one that does not parse (an enum label
# `price_$_{low`). Text made while drawing (ticks, legends) reads the setting then too, so
# the figures are both built and rendered under it.
_AS_TEXT = {"text.parse_math": False}


# ---- saving -------------------------------------------------------------------------------


@rc_context(_AS_TEXT)
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


@rc_context(_AS_TEXT)
def figures(doc: Mapping[str, Any]) -> dict[str, Figure]:
    """The plots of an artifact document, by name, in PLOTS' order: every one but "runs"
    when the test set was scored once (one dot per program says nothing the comparison
    does not)."""
    spec = ProgramSpec.from_json(doc["program"])
    states = {path: StepState.from_json(s) for path, s in doc.get("states", {}).items()}
    training = doc.get("training") or {}
    scores = training.get("scores") or {}
    drawn = {
        "graph": lambda: program_graph(spec, states),
        "comparison": lambda: comparison_plot(scores, program=spec.name),
        "runs": lambda: runs_plot(scores, program=spec.name),
        "history": lambda: history_plot(training.get("history") or {}, program=spec.name, initial=_initial(training),
                                        best_epoch=training.get("best_epoch")),
    }
    return {name: drawn[name]() for name in PLOTS if name != "runs" or run_count(scores) > 1}


def run_count(scores: Mapping[str, Any]) -> int:
    """How many times the test set was scored: the most runs any program's metric has."""
    return max((len(v[2]) for _, metrics, _ in _labelled(scores) for v in metrics.values()), default=0)


def _initial(training: Mapping[str, Any]) -> dict[str, float]:
    """Validation scores before the first epoch (`initial_val_reward`, `initial_val_<metric>`)."""
    return {key[len("initial_"):]: value for key, value in training.items()
            if key.startswith("initial_val_") and isinstance(value, (int, float))}


# ---- the program graph ----------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Node:
    name: str
    lines: list[str]
    colour: str
    badge: str = ""
    trainable: bool = False
    frozen: bool = False
    layer: int = 0
    x: float = 0.0
    y: float = 0.0
    height: float = 0.0


@dataclasses.dataclass(frozen=True, slots=True)
class _Edge:
    src: str
    dst: str
    label: str = ""
    flow: bool = True  # data or control flow (orders the layers); False: a reference, dashed


def kind_colour(kind: str) -> str:
    """A step kind's fill colour: fixed for the built-in kinds, stable by name for others."""
    return KIND_COLOURS.get(kind) or _SPARE_COLOURS[zlib.crc32(kind.encode()) % len(_SPARE_COLOURS)]


@rc_context(_AS_TEXT)
def program_graph(spec: ProgramSpec, states: Mapping[str, StepState] | None = None) -> Figure:
    """The program's steps as boxes from its input to its outputs, wired by what each step reads.

    Each box shows the step's kind, model (with its fields) and LM. Trainable steps (with
    learned state, not frozen) have a thick border and say how many examples they hold;
    frozen ones a dashed border. A branch is drawn as its route, its arms and the join of
    their answers. Step fields beyond the common ones (an agent's tools, a new kind's
    settings) are listed in the box, and drawn as dashed edges when they name other steps.
    """
    states = states or {}
    models = {m.name: m for m in spec.models}
    nodes: dict[str, _Node] = {
        spec.input_name: _Node(spec.input_name, [f"input {spec.input_name}", _MONO + spec.input_model,
                                                 *_field_lines(models.get(spec.input_model))], _INPUT_COLOUR)
    }
    edges: list[_Edge] = []
    names = {item.name for item in spec.steps}
    kinds: list[str] = []

    def add_step(step: Any, title: str) -> None:
        node = _step_node(step, title, models, states)
        for field in dataclasses.fields(step):
            if field.name in _SHOWN_STEP_FIELDS:
                continue
            value = getattr(step, field.name)
            items = [value] if isinstance(value, str) else list(value) if isinstance(value, (tuple, list)) else []
            edges.extend(_Edge(step.name, n, field.name, flow=False) for n in items if n in names and n != step.name)
            if value in (None, "", (), [], 0, False) or value == step.model:
                continue
            node.lines += _wrapped(f"{field.name}: {', '.join(map(str, items)) if items else value}", mono=False)
        nodes[step.name] = node
        edges.extend(_Edge(source, step.name) for source in step.sources if source in nodes)
        kinds.append(step.kind)

    for item in spec.steps:
        arms = getattr(item, "arms", None)
        if arms is None:
            add_step(item, f"{item.name} = {item.kind}")
            continue
        on = getattr(item, "on", None)
        route = f"{item.name} (route)"
        nodes[route] = _Node(route, [f"{item.name} = {item.kind}", *([f"on {on[0]}.{on[1]}"] if on else [])],
                             kind_colour(item.kind))
        kinds.append(item.kind)
        if on and on[0] in nodes:
            edges.append(_Edge(on[0], route))
        for arm in arms:
            label = f'"{arm.label}"' if arm.label is not None else "otherwise"
            add_step(arm.step, f"{label} ⇒ {arm.step.kind}")
            edges.append(_Edge(route, arm.step.name, label))
        nodes[item.name] = _Node(item.name, [f"{item.name} (the arm that ran)", f"→ {item.model}",
                                             *_field_lines(models.get(item.model))], kind_colour(item.kind))
        edges.extend(_Edge(arm.step.name, item.name) for arm in arms)
    _layout(nodes, edges)

    layers = max(n.layer for n in nodes.values()) + 1
    tallest = max(n.y + n.height / 2 for n in nodes.values())
    width = max(7.0, layers * _COL + 1.3)
    kinds = list(dict.fromkeys(kinds))
    handles = [Patch(facecolor=_INPUT_COLOUR, edgecolor="#555", label="input")]
    handles += [Patch(facecolor=kind_colour(k), edgecolor="#555", label=k) for k in kinds]
    handles.append(Patch(facecolor="white", edgecolor="#111", linewidth=2.4, label="trainable"))
    if any(n.frozen for n in nodes.values()):
        handles.append(Patch(facecolor="white", edgecolor="#777", linestyle="--", label="frozen"))
    if any(not e.flow for e in edges):
        handles.append(Line2D([], [], color="#666", linestyle="--", label="refers to"))
    columns = max(1, min(len(handles), int(width // 1.9)))
    bottom = 0.25 + 0.24 * -(-len(handles) // columns)
    # A reference goes over the top when its target is the highest box of its layer, else below.
    over = {e: all(n.y >= nodes[e.dst].y for n in nodes.values() if n.layer == nodes[e.dst].layer)
            for e in edges if not e.flow}
    headroom = 0.6 if any(over.values()) else 0.0
    bottom += 0.6 if not all(over.values()) else 0.0
    height = tallest + 0.8 + bottom + headroom
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, width)
    ax.set_ylim(0, height)
    ax.axis("off")
    top = height - 0.7 - headroom
    for node in nodes.values():
        node.x = 0.3 + node.layer * _COL + _BOX_W / 2
        node.y = top - node.y  # the layout measures y downwards from the top
        _draw_node(ax, node)
    for edge in edges:
        _draw_edge(ax, nodes[edge.src], nodes[edge.dst], edge, over=over.get(edge, False))
    for name in (n for n in _outputs(spec) if n in nodes):  # a tag on the box's top right corner
        out = nodes[name]
        ax.text(out.x + _BOX_W / 2 - 0.08, out.y + out.height / 2, "output", ha="right", va="center", fontsize=8,
                fontweight="bold", color="white",
                bbox={"boxstyle": "round,pad=0.25", "facecolor": "#222", "edgecolor": "none"})
    title = f"Program {spec.name}" + (f": {spec.description}" if spec.description else "")
    ax.text(0.3, height - 0.32, _clip(title, int(width * 9)), fontsize=12, fontweight="bold", va="center")
    ax.legend(handles=handles, loc="lower left", fontsize=8, frameon=False, ncols=columns,
              bbox_to_anchor=(0.02, 0.0), handlelength=1.6, columnspacing=1.2)
    return fig


_SHOWN_STEP_FIELDS = {"name", "kind", "model", "answer_model", "sources", "lm", "path", "frozen"}


def _outputs(spec: ProgramSpec) -> tuple[str, ...]:
    outputs = getattr(spec, "outputs", None)
    return tuple(outputs) if outputs is not None else (getattr(spec, "output"),)


def _step_node(step: Any, title: str, models: Mapping[str, Any], states: Mapping[str, StepState]) -> _Node:
    lines = [title if len(title) <= 30 else title[:29] + "…", f"→ {step.model}", *_field_lines(models.get(step.model))]
    if getattr(step, "lm", None):
        lines.append(f"lm {step.lm}")
    state = states.get(getattr(step, "path", ""))
    frozen = bool(getattr(step, "frozen", False)) or (state is not None and state.frozen)
    badge = ""
    if frozen:
        badge = "frozen"
    elif state is not None:
        n = len(state.examples)
        fixed = f"{n} example{'s' if n != 1 else ''}"
        if state.retrieval is None:
            badge = f"trainable · {fixed}"
        else:  # the examples each call retrieves from the step's pool
            nearest = f"{state.retrieval.k} nearest of {len(state.retrieval.pool.demos)}"
            badge = f"trainable · {fixed + ' + ' if n else ''}{nearest}"
    node = _Node(step.name, lines, kind_colour(step.kind), badge, state is not None and not frozen, frozen)
    return node


_COL = 3.4     # width of one layer, inches
_BOX_W = 2.7   # box width
_LINE = 0.19   # height of one text line
_GAP = 0.45    # vertical space between boxes


def _field_lines(model: Any, limit: int = 4) -> list[str]:
    if model is None:
        return []
    fields = [f"{f.name}: {_type_text(f.type)}" for f in model.fields]
    if len(fields) > limit:
        fields = fields[: limit - 1] + [f"… {len(fields) - limit + 1} more fields"]
    return [line for text in fields for line in _wrapped(text)]


_MONO = "  "  # the mark of a line drawn in monospace (a field and its type), not drawn itself
_WRAP = {True: 36, False: 40}  # characters of 8 pt monospace, or sans-serif, that fit in a box


def _wrapped(text: str, *, mono: bool = True) -> list[str]:
    """`text` as the lines of a box, wrapped rather than cut (a long type, such as an enum of
    many labels, stays whole); continued monospace lines are indented."""
    lines = textwrap.wrap(text, _WRAP[mono], subsequent_indent="  " if mono else "", break_on_hyphens=False)
    return [(_MONO if mono else "") + line for line in lines or [""]]


def _type_text(t: Any) -> str:
    """A field type (the spec's JSON form) as written in a .icl file, near enough."""
    if isinstance(t, str) or not isinstance(t, Mapping) or not t:
        return str(t)
    if "list" in t:
        return f"list[{_type_text(t['list'])}]"
    if "optional" in t:
        return f"{_type_text(t['optional'])}?"
    if "enum" in t:
        return "enum(" + ", ".join(map(str, t["enum"])) + ")"
    if "model" in t:
        return str(t["model"])
    if "constrained" in t:
        rest = ", ".join(f"{k}: {v}" for k, v in t.items() if k != "constrained")
        return f"{_type_text(t['constrained'])}({rest})"
    key, value = next(iter(t.items()))
    return f"{key} {value}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _layout(nodes: dict[str, _Node], edges: list[_Edge]) -> None:
    """Layers by longest flow path from the input (nodes come after what feeds them); within
    a layer, ordered by where their sources sit, and every layer centred on the tallest."""
    feeds = [(e.src, e.dst) for e in edges if e.flow]
    for name, node in nodes.items():  # insertion order is dependency order
        node.layer = 1 + max((nodes[a].layer for a, b in feeds if b == name), default=-1)
        node.height = 0.22 + _LINE * len(node.lines) + (_LINE if node.badge else 0)
    layers = max(n.layer for n in nodes.values()) + 1
    rank: dict[str, float] = {}
    extents = []
    for i in range(layers):
        members = [n for n in nodes.values() if n.layer == i]
        members.sort(key=lambda n: _mean([rank[a] for a, b in feeds if b == n.name and a in rank], 0.0))
        y = 0.0
        for j, node in enumerate(members):
            rank[node.name] = j
            node.y = y + node.height / 2
            y += node.height + _GAP
        extents.append((members, y - _GAP))
    tallest = max(extent for _, extent in extents)
    for members, extent in extents:
        for node in members:
            node.y += (tallest - extent) / 2


def _mean(values: Sequence[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def _draw_node(ax: Any, node: _Node) -> None:
    left, bottom = node.x - _BOX_W / 2, node.y - node.height / 2
    if node.frozen:
        style = {"linewidth": 1.3, "edgecolor": "#777", "linestyle": "--"}
    else:
        style = {"linewidth": 2.4 if node.trainable else 1.0, "edgecolor": "#111" if node.trainable else "#555"}
    ax.add_patch(FancyBboxPatch((left, bottom), _BOX_W, node.height, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=node.colour, **style))
    y = node.y + node.height / 2 - 0.11 - _LINE / 2
    for i, line in enumerate(node.lines):
        mono = line.startswith(_MONO)
        ax.text(left + 0.12, y, line.removeprefix(_MONO) if mono else line, fontsize=8 if i else 9.5, va="center",
                ha="left",
                fontweight="bold" if i == 0 else "normal", family="monospace" if mono else "sans-serif",
                color="#333" if mono else "#000")
        y -= _LINE
    if node.badge:
        ax.text(left + 0.12, y, node.badge, fontsize=8, va="center", ha="left", style="italic",
                color="#1a4fb0" if node.trainable else "#666")


def _draw_edge(ax: Any, src: _Node, dst: _Node, edge: _Edge, *, over: bool = False) -> None:
    """Flow left to right between box sides; edges that skip layers bow around the boxes in
    between; references back or within a layer go through the tops (`over`) or bottoms."""
    if dst.layer > src.layer:
        start, end = (src.x + _BOX_W / 2, src.y), (dst.x - _BOX_W / 2, dst.y)
        span = dst.layer - src.layer
        rad = 0.0 if span == 1 else min(0.45, 0.12 + 0.1 * span) * (1 if dst.y <= src.y else -1)
    else:  # over the top when the target is the highest box of its layer, else below
        side = 1 if over else -1
        start, end = (src.x, src.y + side * src.height / 2), (dst.x, dst.y + side * dst.height / 2)
        rad = 0.25 * (1 if end[0] >= start[0] else -1) * -side
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, linewidth=1.2,
                                 color="#333" if edge.flow else "#777", linestyle="-" if edge.flow else "--",
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=2, shrinkB=2))
    if edge.label:
        # arc3's control point, then the middle of the quadratic curve through it
        dx, dy = end[0] - start[0], end[1] - start[1]
        cx, cy = (start[0] + end[0]) / 2 + rad * dy, (start[1] + end[1]) / 2 - rad * dx
        mx, my = (start[0] + 2 * cx + end[0]) / 4, (start[1] + 2 * cy + end[1]) / 4
        ax.text(mx, my, edge.label, fontsize=7.5, color="#444", ha="center", va="center",
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.9})


# ---- history ----------------------------------------------------------------------------------


def metric_names(history: Mapping[str, Sequence[float]]) -> list[str]:
    """The metrics a history logs (`reward` first), each once whether trained, `val_`-prefixed or both."""
    names = list(dict.fromkeys(k[4:] if k.startswith("val_") else k for k in history))
    return sorted(names, key=lambda n: (n != "reward", names.index(n)))


@rc_context(_AS_TEXT)
def history_plot(
    history: Mapping[str, Sequence[float]],
    *,
    program: str = "",
    initial: Mapping[str, float] | None = None,
    best_epoch: int | None = None,
) -> Figure:
    """One panel per metric: training and validation per epoch, the validation score before
    training at epoch 0, and the kept epoch marked."""
    initial = initial or {}
    names = metric_names(history) or ["reward"]
    cols = min(2, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(5.2 * cols + 0.4, 3.5 * rows + 0.7), layout="constrained")
    fig.suptitle(f"Training history{': ' + program if program else ''}", fontsize=13, fontweight="bold")
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, name in zip(axes.flat, names):
        train, val = list(history.get(name, [])), list(history.get(f"val_{name}", []))
        drew = False
        if train:
            ax.plot(range(1, len(train) + 1), train, marker="o", markersize=5, color=TRAIN_LINE, label="training",
                    zorder=3)
            drew = True
        if val or f"val_{name}" in initial:
            start = [0] if f"val_{name}" in initial else []
            xs = start + list(range(1, len(val) + 1))
            ys = ([initial[f"val_{name}"]] if start else []) + val
            ax.plot(xs, ys, marker="s", markersize=9, markerfacecolor="white", color=VAL_LINE, label="validation",
                    zorder=2)  # hollow and larger, so a training point on top of it still shows
            drew = True
        if best_epoch is not None and (train or val):
            kept = "kept: epoch %d" % best_epoch if best_epoch else "kept: untrained (epoch 0)"
            ax.axvline(best_epoch, color="#444", linestyle=":", linewidth=1.2, label=kept)
        if not drew:
            ax.text(0.5, 0.5, "no epochs were run", ha="center", va="center", transform=ax.transAxes, color="#666")
        ax.set_title(name.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.set_ylabel(name.replace("_", " "))
        last = max(len(train), len(val), 1)
        ax.set_xlim((0 if f"val_{name}" in initial else 1) - 0.3, last + 0.3)
        _integer_ticks(ax, 0 if f"val_{name}" in initial else 1, last)
        values = [*train, *val, *(v for k, v in initial.items() if k == f"val_{name}")]
        if is_count(name):
            _count_range(ax, values)
        else:
            _unit_range(ax, values)
        ax.grid(alpha=0.3)
        if drew:
            ax.legend(fontsize=8, loc="best")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    return fig


def _integer_ticks(ax: Any, first: int, last: int) -> None:
    if last - first <= 15:
        ax.set_xticks(range(first, last + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _unit_range(ax: Any, values: Sequence[float]) -> None:
    """Scores in [0, 1] get that whole range, so small wiggles do not look like big changes."""
    if values and all(0.0 <= v <= 1.0 for v in values):
        ax.set_ylim(-0.04, 1.04)


def _count_range(ax: Any, values: Sequence[float]) -> None:
    """Counts from 0 with whole-number ticks, so a flat line reads 8, not 7.6 to 8.4."""
    ax.set_ylim(0, max([*values, 1]) * 1.15)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


# ---- scores over runs ----------------------------------------------------------------------


def score_metrics(score: Mapping[str, Any]) -> dict[str, tuple[float, float, list[float]]]:
    """metric -> (mean, std, per-run values) from one scores record.

    Reads `<m>_mean`, `<m>_std` and the runs in `<m>s` or `<m>_runs` (the artifact's
    form), or a nested `{<m>: {"mean", "std", "runs"}}`.
    """
    out: dict[str, tuple[float, float, list[float]]] = {}
    for key, value in score.items():
        if isinstance(value, Mapping) and isinstance(value.get("mean"), (int, float)):
            runs = value.get("runs") or value.get("values") or [value["mean"]]
            out[key] = (float(value["mean"]), float(value.get("std") or 0.0), [float(v) for v in runs])
        elif key.endswith("_mean") and isinstance(value, (int, float)) and not isinstance(value, bool):
            name = key[: -len("_mean")]
            runs = score.get(f"{name}s") or score.get(f"{name}_runs") or [value]
            out[name] = (float(value), float(score.get(f"{name}_std") or 0.0), [float(v) for v in runs])
    return dict(sorted(out.items(), key=lambda item: item[0] != "reward"))


def _labelled(scores: Mapping[str, Any]) -> list[tuple[str, dict[str, tuple[float, float, list[float]]], str]]:
    colours = {"untrained": UNTRAINED, "trained": TRAINED}
    spare = iter(("#7a52c7", "#1f9d74", "#c7452f"))
    order = sorted(scores, key=lambda label: (label not in colours, label != "untrained", label))
    return [(label, score_metrics(scores[label]), colours.get(label) or next(spare, "#555"))
            for label in order if isinstance(scores[label], Mapping)]


@rc_context(_AS_TEXT)
def runs_plot(scores: Mapping[str, Any], *, program: str = "") -> Figure:
    """Each run's test scores (not the counts, which the comparison shows), untrained and
    trained, with the mean and a ± one std band."""
    labelled = _labelled(scores)
    names = [n for n in dict.fromkeys(n for _, metrics, _ in labelled for n in metrics) if not is_count(n)] or ["reward"]
    n_runs = max((len(m[n][2]) for _, m, _ in labelled for n in m), default=0)
    fig = Figure(figsize=(5.4 * min(2, len(names)) + 0.4, 3.7 * ((len(names) + 1) // 2) + 0.7),
                 layout="constrained")
    if n_runs > 1:
        title = f"Test score over {n_runs} runs (mean ± std)"
    else:
        title = "Test score of one run"
    fig.suptitle(title + (f": {program}" if program else ""), fontsize=12, fontweight="bold")
    axes = fig.subplots((len(names) + 1) // 2, min(2, len(names)), squeeze=False)
    for ax, name in zip(axes.flat, names):
        values: list[float] = []
        for i, (label, metrics, colour) in enumerate(labelled):
            if name not in metrics:
                continue
            mean, std, runs = metrics[name]
            dodge = (i - (len(labelled) - 1) / 2) * 0.12  # side by side, so equal scores do not hide each other
            xs = [run + dodge for run in range(1, len(runs) + 1)]
            values += runs
            ax.plot(xs, runs, marker="o", linestyle="none", color=colour, markersize=7,
                    label=f"{label}: {mean:.3f} ± {std:.3f}")
            lo, hi = 0.6, max(len(runs), 1) + 0.4
            ax.hlines(mean, lo, hi, color=colour, linewidth=1.6)
            ax.fill_between([lo, hi], mean - std, mean + std, color=colour, alpha=0.18, linewidth=0)
        if not values:
            ax.text(0.5, 0.5, "no test runs", ha="center", va="center", transform=ax.transAxes, color="#666")
        ax.set_title(name.replace("_", " ") + (" (set `runs N` to see the spread)" if n_runs == 1 else ""),
                     fontsize=10 if n_runs == 1 else None)
        ax.set_xlabel("run")
        ax.set_ylabel(f"test {name.replace('_', ' ')}")
        ax.set_xlim(0.5, max(n_runs, 1) + 0.5)
        _integer_ticks(ax, 1, max(n_runs, 1))
        _unit_range(ax, values)
        ax.grid(alpha=0.3)
        if values:
            ax.legend(fontsize=8, loc="best")
    for ax in list(axes.flat)[len(names):]:
        ax.set_visible(False)
    return fig


@rc_context(_AS_TEXT)
def comparison_plot(scores: Mapping[str, Any], *, program: str = "") -> Figure:
    """Untrained beside trained: bars of the mean, error bars of the std. The scores share
    one panel on a 0-1 axis; each count (failures, calls, tokens) has a panel of its own
    scale, so thousands of tokens do not flatten the scores."""
    labelled = _labelled(scores)
    names = list(dict.fromkeys(n for _, metrics, _ in labelled for n in metrics)) or ["reward"]
    quality, counts = [n for n in names if not is_count(n)], [n for n in names if is_count(n)]
    runs = max((len(m[n][2]) for _, m, _ in labelled for n in m), default=0)
    per_bar = 0.75 * max(len(labelled), 1)
    widths = [max(2.4, per_bar * len(quality) + 1.0)] + [max(1.6, per_bar + 1.0)] * len(counts)
    fig = Figure(figsize=(max(7.0, sum(widths) + 0.6), 4.8), layout="constrained")
    fig.suptitle(f"Untrained vs trained{': ' + program if program else ''}", fontsize=13, fontweight="bold")
    axes = fig.subplots(1, len(widths), squeeze=False, gridspec_kw={"width_ratios": widths})[0]
    _bars(axes[0], labelled, quality, runs, count=False)
    axes[0].set_title("test set" + (f", mean ± std over {runs} runs" if runs > 1 else ", one run"), fontsize=10)
    axes[0].set_ylabel("test score (higher is better)")
    axes[0].set_ylim(0, 1.12)
    for ax, name in zip(axes[1:], counts):
        _bars(ax, labelled, [name], runs, count=True)
        ax.set_title(name + (" (fewer is better)" if direction(name) < 0 else ""), fontsize=10)
    if labelled:
        axes[0].legend(loc="upper left", fontsize=9)
    else:
        axes[0].text(0.5, 0.5, "no test scores", ha="center", va="center", transform=axes[0].transAxes,
                     color="#666")
    return fig


def _bars(ax: Any, labelled: list, names: list[str], runs: int, *, count: bool) -> None:
    """Bars of each program's mean of `names`, side by side, labelled with their values."""
    width = min(0.32, 0.8 / max(len(labelled), 1))
    top = 0.0
    for i, (label, metrics, colour) in enumerate(labelled):
        xs = [j + (i - (len(labelled) - 1) / 2) * width for j, n in enumerate(names) if n in metrics]
        means = [metrics[n][0] for n in names if n in metrics]
        stds = [metrics[n][1] for n in names if n in metrics]
        top = max([top, *(m + s for m, s in zip(means, stds))])
        bars = ax.bar(xs, means, width * 0.92, yerr=stds if runs > 1 else None, capsize=5, color=colour,
                      label=label, error_kw={"elinewidth": 1.2, "ecolor": "#222"})
        ax.bar_label(bars, labels=[count_text(m) if count else f"{m:.3f}" for m in means], padding=3, fontsize=9)
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names])
    ax.set_xlim(-0.75, len(names) - 0.25)
    if count:
        _count_range(ax, [top])
    ax.grid(axis="y", alpha=0.3)


# ---- files beside an artifact ----------------------------------------------------------------


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
