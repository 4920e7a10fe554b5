"""Metrics beside the reward: accuracy, failures, usage, and precision/recall/F1 per
label of each enum field of the program's output.

`Metrics(scored)` gives the flat values logged each epoch: `accuracy` (the share of
predictions whose non-text fields, such as numbers, labels and booleans, all equal
the expected ones; every field when the output is all text), `failures`, `calls`,
`tokens`, and `f1_<field>` (macro F1 over the field's labels); `labels(scored)` gives
the per-label table kept with the test scores.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..language.specs import ProgramSpec
from .scored import Scored


# The metrics that count: `failures` (fewer is better) and the costs `calls` and `tokens`
# (more is neither better nor worse by itself). The others are scores in [0, 1], higher better.
COUNTS: Mapping[str, int] = {"failures": -1, "calls": 0, "tokens": 0}


def is_count(name: str) -> bool:
    """Whether metric `name` (bare or `val_`-prefixed) is a count, not a score in [0, 1]."""
    return name.removeprefix("val_") in COUNTS


def direction(name: str) -> int:
    """+1 when a rise of metric `name` (bare or `val_`-prefixed) is better, -1 when it is
    worse, 0 when it is a cost, to be weighed against the scores."""
    return COUNTS.get(name.removeprefix("val_"), 1)


def metric_text(value: Any, name: str, sign: bool = False) -> str:
    """A metric's value: a score with three decimals, a count (failures, calls, tokens) as a
    whole number, or with one decimal when it is a mean over runs that is not whole."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    if not is_count(name):
        return f"{value:{'+' if sign else ''}.3f}"
    return count_text(value, sign)


def count_text(value: Any, sign: bool = False) -> str:
    """A count with thousands separated: whole, or with one decimal when it is a mean that is not."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–"
    plus = "+" if sign else ""
    return f"{value:{plus},.0f}" if float(value).is_integer() else f"{value:{plus},.1f}"


def enum_fields(spec: ProgramSpec) -> dict[str, list[str]]:
    """Enum fields of the program's output model, with their labels."""
    model = next(m for m in spec.models if m.name == spec.output_model)
    found = {}
    for f in model.fields:
        t = f.type["optional"] if isinstance(f.type, dict) and "optional" in f.type else f.type
        if isinstance(t, dict) and "enum" in t:
            found[f.name] = list(t["enum"])
    return found


def _is_text(t: Any) -> bool:
    return t == "str" or (isinstance(t, dict) and t.get("constrained") == "str")


class Metrics:
    def __init__(self, spec: ProgramSpec) -> None:
        self.enums = enum_fields(spec)
        model = next(m for m in spec.models if m.name == spec.output_model)
        self.compared = tuple(f.name for f in model.fields if not _is_text(f.type)) or \
            tuple(f.name for f in model.fields)

    def __call__(self, scored: Sequence[Scored]) -> dict[str, float]:
        n = len(scored)
        values = {
            "accuracy": sum(self._right(s) for s in scored) / n if n else 0.0,
            "failures": float(sum(s.trace.output is None for s in scored)),
            "calls": float(sum(r.calls for s in scored for r in s.trace.steps.values())),
            "tokens": float(sum(r.usage.prompt_tokens + r.usage.completion_tokens
                                for s in scored for r in s.trace.steps.values())),
        }
        for field, table in self.labels(scored).items():
            values[f"f1_{field}"] = table["macro_f1"]
        return values

    def _right(self, s: Scored) -> bool:
        out = s.trace.output
        return out is not None and all(out.get(k) == s.example.y.get(k) for k in self.compared if k in s.example.y)

    def labels(self, scored: Sequence[Scored]) -> dict[str, dict[str, Any]]:
        """Per enum field: precision, recall, F1 and support of each label, and their macro F1.

        A failed prediction counts as a miss of its true label (it lowers recall)
        and predicts no label.
        """
        tables = {}
        for field, labels in self.enums.items():
            rows = {}
            for label in labels:
                tp = sum(_true(s, field) == label and _pred(s, field) == label for s in scored)
                predicted = sum(_pred(s, field) == label for s in scored)
                support = sum(_true(s, field) == label for s in scored)
                precision = tp / predicted if predicted else 0.0
                recall = tp / support if support else 0.0
                f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
                rows[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
            present = [r["f1"] for r in rows.values() if r["support"]]
            tables[field] = {"labels": rows, "macro_f1": sum(present) / len(present) if present else 0.0}
        return tables


def _true(s: Scored, field: str) -> Any:
    return s.example.y.get(field)


def _pred(s: Scored, field: str) -> Any:
    return None if s.trace.output is None else s.trace.output.get(field)


def label_summary(tables: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per-label precision, recall and F1 averaged over runs (`tables`: one `Metrics.labels`
    per run, as the artifact keeps them), with the support: one row per field and label."""
    rows = []
    for field, table in (tables[0] if tables else {}).items():
        for label, first in table["labels"].items():
            cells = [t[field]["labels"][label] for t in tables]
            rows.append({"field": field, "label": label, "support": first["support"],
                         **{k: sum(c[k] for c in cells) / len(cells) for k in ("precision", "recall", "f1")}})
    return rows
