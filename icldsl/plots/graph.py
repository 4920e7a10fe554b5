"""The program graph: a program's steps as boxes from its input to its outputs, laid out
in layers by what each step reads, drawn from its spec (and learned states, when given)."""

from __future__ import annotations

import dataclasses
import textwrap
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

from ..language.specs import ProgramSpec
from ..runtime.state import StepState
from .canvas import AS_TEXT

# Step kinds' fill colours (others get a stable colour by name), and the input's.
KIND_COLOURS = {
    "generate": "#dbe8ff",
    "chain_of_thought": "#e6dcff",
    "decide": "#ffe7c7",
    "branch": "#d3f2ea",
    "agent": "#ffd9d9",
}
_SPARE_COLOURS = ("#e9f5c9", "#fde2f3", "#d8f0fb", "#f3e8d2", "#e2e2f7", "#dff3df")
_INPUT_COLOUR = "#eef0f3"


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


@rc_context(AS_TEXT)
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
