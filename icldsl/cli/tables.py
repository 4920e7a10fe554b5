"""The text tables and lines `fit` and `eval` print: scores, labels, the paired difference,
epochs, optimizer comparisons and LM usage."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..training.estimate import Estimate
from ..training.metrics import label_summary

if TYPE_CHECKING:
    from ..training.session import Scores
    from ..training.history import History
    from ..training.usage import UsageTable


def scores_table(rows: list[tuple[str, Scores]]) -> str:
    """Reward (mean ± std over runs when there are several), metrics, failures, and the
    examples' standard error, one column per program."""
    header = f"{'':<12}" + "".join(f"{name:>20}" for name, _ in rows)

    def cell(values: list[float], digits: int = 3) -> str:
        mean = float(np.mean(values)) if values else 0.0
        return f"{mean:.{digits}f} ± {float(np.std(values)):.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"

    lines = [header, f"{'reward':<12}" + "".join(f"{cell([r.reward for r in s.runs]):>20}" for _, s in rows)]
    metric_runs = [s.metric_runs() for _, s in rows]
    keys = [k for k in (metric_runs[0][0] if metric_runs and metric_runs[0] else {})
            if k == "accuracy" or k.startswith("f1_")]
    for key in keys:
        lines.append(f"{key:<12}" + "".join(f"{cell([m[key] for m in runs]):>20}" for runs in metric_runs))
    lines.append(f"{'failures':<12}" + "".join(f"{sum(r.failures for r in s.runs):>20}" for _, s in rows))
    spread = [Estimate.of([x.reward for x in s.runs[-1].scored]) if s.runs else Estimate.of([]) for _, s in rows]
    lines.append(f"{'std. error':<12}" + "".join(f"{f'± {e.stderr:.3f} (n={e.n})':>20}" for e in spread))
    return "\n".join(lines)


LABELS_SHOWN = 10  # labels `fit -q` shows: the worst by the last column's F1 (the report has them all)


def labels_table(rows: list[tuple[str, Scores]], worst: int | None = None) -> str | None:
    """Precision / recall / F1 of every label of the output's enum fields (means over runs),
    one column per program; None when the output has no enum field. With `worst`, only that
    many labels, those with the lowest F1 in the last column (ties in the declared order),
    and a line saying how many were left out."""
    summaries = [label_summary(s.label_tables()) for _, s in rows]
    if not summaries or not summaries[0]:
        return None
    shown = list(range(len(summaries[0])))
    if worst is not None and len(shown) > worst:
        shown = sorted(sorted(shown, key=lambda i: summaries[-1][i]["f1"])[:worst])
    lines = [f"{'per label':<24}" + "".join(f"{name + ' P / R / F1':>26}" for name, _ in rows) + f"{'support':>9}"]
    for i in shown:
        first = summaries[0][i]
        cells = "".join(f"{'{precision:.3f} / {recall:.3f} / {f1:.3f}'.format(**s[i]):>26}" for s in summaries)
        lines.append(f"{first['field'] + '=' + first['label']:<24}{cells}{first['support']:>9}")
    if len(shown) < len(summaries[0]):
        lines.append(f"(the {len(shown)} labels with the lowest {rows[-1][0]} F1 of {len(summaries[0])}; "
                     "report.html and the artifact have them all)")
    return "\n".join(lines)


def difference(untrained: Scores, trained: Scores) -> str | None:
    """Trained minus untrained on the same test examples (the last run of each), with its standard error."""
    from ..training.session import trained_minus_untrained  # tables load without the training session

    diff = trained_minus_untrained(untrained, trained)
    if diff is None:
        return None
    return paired_line("trained - untrained", diff.mean, diff.stderr, diff.n)


def paired_line(label: str, mean: float, se: float, n: int) -> str:
    """A paired difference as fit prints it, and whether it is more than two standard errors from 0."""
    verdict = "more than" if abs(mean) > 2 * se else "within"
    return f"{label}: {mean:+.3f} ± {se:.3f} (paired over {n} examples; {verdict} two standard errors)"


def baseline_lines(baselines: Sequence[Mapping[str, Any]]) -> list[str]:
    """The retriever alone on the test rows, per step that retrieves examples and answers a
    label (training.baselines): majority vote and 1-nearest, and trained - vote, paired."""
    lines = []
    for b in baselines:
        diff = b["trained_minus_vote"]
        chosen = f", cascade {json.dumps(b['cascade'])}" if "cascade" in b else ""
        chosen += f", vote_weight {b['vote_weight']:g}" if "vote_weight" in b else ""
        lines += [f"retrieval alone ({b['step']}, {b['field']}, k={b['k']}{chosen}): vote of the retrieved labels "
                  f"{b['vote']['mean']:.3f}, 1-nearest {b['nearest1']['mean']:.3f}",
                  paired_line("trained - vote", diff["mean"], diff["se"], diff["n"])]
    return lines


def epoch_lines(history: History) -> list[str]:
    """One line per epoch: reward and quality metrics, training then validation."""
    shown = [k for k in history.history if k.removeprefix("val_") in ("reward", "accuracy")
             or k.removeprefix("val_").startswith("f1_")]
    lines = []
    for epoch in range(history.epochs_run):
        logs = "  ".join(f"{k} {history.history[k][epoch]:.3f}" for k in shown if epoch < len(history.history[k]))
        lines.append(f"  epoch {epoch + 1}: {logs}")
    return lines


def event_lines(events: list[dict]) -> list[str]:
    """One line per comparison an optimizer made: the best candidate against the current
    states on the same examples, and whether the program switched."""
    lines = []
    for event in events:
        diff = event.get("difference")
        if diff is None:
            if event.get("reason"):
                lines.append(f"  epoch {event['epoch']} {event['optimizer']}: {event['reason']}")
            continue
        kept = event.get("kept")
        switched = kept if isinstance(kept, bool) else kept != event.get("incumbent")
        lines.append(f"  epoch {event['epoch']} {event['optimizer']}: best candidate {diff['mean']:+.3f} "
                     f"± {diff['stderr']:.3f} against the current states (paired, n={diff['n']}): "
                     + ("switched" if switched else "kept the current states")
                     + (f" (refused: {event['refused']})" if event.get("refused") else ""))
    if events:
        lines.append("  (every comparison is in the artifact: training.optimizer_events)")
    return lines


def usage_table(table: UsageTable) -> str:
    """Calls, cache hits, failures, tokens and latency per step and per LM; and, when some step
    runs were answered by the vote of their retrieved examples, how many (no call made)."""
    rows = [(f"step {k}", v) for k, v in table.steps.items()] + [(f"lm {k}", v) for k, v in table.lms.items()]
    if len(table.steps) > 1:
        rows.append(("total", table.total))
    width = max([len(label) for label, _ in rows] + [8]) + 2
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f}ms" if value < 10 else f"{value:.1f}s"
    lines = [f"{'LM usage':<{width}}{'calls':>7}{'cached':>8}{'failed':>8}{'tokens in':>11}{'tokens out':>12}"
             f"{'latency mean':>14}{'p50':>8}{'p95':>8}"]
    cascade = any(s.cascaded for _, s in rows)
    if cascade:
        lines[0] += f"{'no call (cascade)':>19}"
    for label, s in rows:
        lines.append(f"{'  ' + label:<{width}}{s.calls:>7}{s.cache_hits:>8}{s.failures:>8}{s.prompt_tokens:>11}"
                     f"{s.completion_tokens:>12}{ms(s.latency()):>14}{ms(s.latency(50)):>8}{ms(s.latency(95)):>8}"
                     + (f"{s.cascaded:>19}" if cascade else ""))
    if not rows:
        lines.append("  no LM calls")
    return "\n".join(lines)
