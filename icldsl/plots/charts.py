"""Charts of a fit's numbers: the history per epoch (training and validation, the kept
epoch), each test run's scores, and untrained beside trained. Scores come as the artifact's
`ScoreRecord`s (training/training_record.py), the history as its per-epoch logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib import rc_context
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..training.metrics import count_text, direction, is_count
from ..training.training_record import ScoreRecord, Stat
from .canvas import AS_TEXT

# The two states of a program, and the two curves of a history.
UNTRAINED, TRAINED = "#9aa5b1", "#2f6fde"
TRAIN_LINE, VAL_LINE = "#2f6fde", "#e07b00"


# ---- history ----------------------------------------------------------------------------------


def metric_names(history: Mapping[str, Sequence[float]]) -> list[str]:
    """The metrics a history logs (`reward` first), each once whether trained, `val_`-prefixed or both."""
    names = list(dict.fromkeys(k[4:] if k.startswith("val_") else k for k in history))
    return sorted(names, key=lambda n: (n != "reward", names.index(n)))


@rc_context(AS_TEXT)
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
    fig, panels = _metric_panels(names, f"Training history{': ' + program if program else ''}", width=5.2,
                                 height=3.5, fontsize=13)
    for ax, name in zip(panels, names):
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
    return fig


def _metric_panels(names: Sequence[str], title: str, *, width: float, height: float,
                   fontsize: int) -> tuple[Figure, list[Any]]:
    """A titled figure of one panel per metric, two to a row (`width` x `height` inches each),
    and its panels in the metrics' order; a last odd cell is hidden."""
    cols = min(2, len(names))
    rows = (len(names) + cols - 1) // cols
    fig = Figure(figsize=(width * cols + 0.4, height * rows + 0.7), layout="constrained")
    fig.suptitle(title, fontsize=fontsize, fontweight="bold")
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[len(names):]:
        ax.set_visible(False)
    return fig, axes[:len(names)]


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


# ---- test scores: each run, untrained beside trained --------------------------------------------


def _labelled(scores: Mapping[str, ScoreRecord]) -> list[tuple[str, dict[str, Stat], str]]:
    """(label, its metrics with the reward first, colour) per program state, untrained first."""
    colours = {"untrained": UNTRAINED, "trained": TRAINED}
    spare = iter(("#7a52c7", "#1f9d74", "#c7452f"))
    order = sorted(scores, key=lambda label: (label not in colours, label != "untrained", label))
    return [(label, scores[label].stats, colours.get(label) or next(spare, "#555")) for label in order]


@rc_context(AS_TEXT)
def runs_plot(scores: Mapping[str, ScoreRecord], *, program: str = "") -> Figure:
    """Each run's test scores (not the counts, which the comparison shows), untrained and
    trained, with the mean and a ± one std band."""
    labelled = _labelled(scores)
    names = [n for n in dict.fromkeys(n for _, metrics, _ in labelled for n in metrics) if not is_count(n)] or ["reward"]
    n_runs = max((len(m[n].runs) for _, m, _ in labelled for n in m), default=0)
    title = f"Test score over {n_runs} runs (mean ± std)" if n_runs > 1 else "Test score of one run"
    fig, panels = _metric_panels(names, title + (f": {program}" if program else ""), width=5.4, height=3.7,
                                 fontsize=12)
    for ax, name in zip(panels, names):
        values: list[float] = []
        for i, (label, metrics, colour) in enumerate(labelled):
            if name not in metrics:
                continue
            mean, std, runs = metrics[name].mean, metrics[name].std, list(metrics[name].runs)
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
    return fig


@rc_context(AS_TEXT)
def comparison_plot(scores: Mapping[str, ScoreRecord], *, program: str = "") -> Figure:
    """Untrained beside trained: bars of the mean, error bars of the std. The scores share
    one panel on a 0-1 axis; each count (failures, calls, tokens) has a panel of its own
    scale, so thousands of tokens do not flatten the scores."""
    labelled = _labelled(scores)
    names = list(dict.fromkeys(n for _, metrics, _ in labelled for n in metrics)) or ["reward"]
    quality, counts = [n for n in names if not is_count(n)], [n for n in names if is_count(n)]
    runs = max((len(m[n].runs) for _, m, _ in labelled for n in m), default=0)
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


def _bars(ax: Any, labelled: list[tuple[str, dict[str, Stat], str]], names: list[str], runs: int, *, count: bool) -> None:
    """Bars of each program's mean of `names`, side by side, labelled with their values."""
    width = min(0.32, 0.8 / max(len(labelled), 1))
    top = 0.0
    for i, (label, metrics, colour) in enumerate(labelled):
        xs = [j + (i - (len(labelled) - 1) / 2) * width for j, n in enumerate(names) if n in metrics]
        means = [metrics[n].mean for n in names if n in metrics]
        stds = [metrics[n].std for n in names if n in metrics]
        top = max([top, *(m + s for m, s in zip(means, stds))])
        bars = ax.bar(xs, means, width * 0.92, yerr=stds if runs > 1 else None, capsize=5, color=colour,
                      label=label, error_kw={"elinewidth": 1.2, "ecolor": "#222"})
        ax.bar_label(bars, labels=[count_text(m) if count else f"{m:.3f}" for m in means], padding=3, fontsize=9)
    ax.set_xticks(range(len(names)), [n.replace("_", " ") for n in names])
    ax.set_xlim(-0.75, len(names) - 0.25)
    if count:
        _count_range(ax, [top])
    ax.grid(axis="y", alpha=0.3)
