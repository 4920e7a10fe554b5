"""`report.html`: one self-contained page about a fit, built from the artifact document.

It opens with one headline, what training gained (trained minus untrained reward on the
test set, with its standard error) and the retrieval baseline beside it when the fit
measured one; every other score, the per-label table and the confusion matrices of enum
outputs are folded below it. Then the plots (inlined as PNG data URIs),
the training settings and history, the data with its fingerprints and warnings, the
learned instructions and examples of every step, LM usage, and tables of predictions
that can be filtered to the failures. No network, no external file: inline CSS and a
little inline JavaScript. Rendered by Jinja with autoescaping, since predictions and
data hold arbitrary text.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from .language.specs import ProgramSpec
from .plots import PLOTS, metric_names, plot_paths, stem, write_all
from .training.metrics import count_text, direction, enum_fields, label_summary, metric_text
from .training.scored import Scored
from .training.training_record import DataRecord, HistoryRecord, ScoreRecord, TrainingRecord

TEMPLATE = "report.html.j2"
CAPTIONS = {
    "comparison": "Untrained and trained program on the test set, per metric.",
    "runs": "Each test run's score, with the mean and a band of ± one standard deviation.",
    "history": "Training and validation scores per epoch; epoch 0 is the validation score before training.",
    "graph": "The program: its input, its steps (trainable ones have a thick border) and its outputs.",
}
TEST_SET = "test set"  # the name of the prediction set of the test examples
FAILED_BELOW = 1.0  # a prediction is a failure when it has no output or a reward below this


@dataclass(frozen=True, slots=True)
class Prediction:
    output: Mapping[str, Any] | None
    error: str | None
    reward: float
    retrieved: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # step path -> origins, in prompt order

    @property
    def failed(self) -> bool:
        return self.output is None or self.reward < FAILED_BELOW


@dataclass(frozen=True, slots=True)
class PredictionRow:
    origin: str
    inputs: Mapping[str, Any]
    expected: Mapping[str, Any]
    predictions: tuple[Prediction, ...]  # one per column of its set

    @property
    def failed(self) -> bool:
        """Whether the last column (the trained program) failed."""
        return self.predictions[-1].failed

    @property
    def changed(self) -> bool:
        """Whether the reward differs between the first and last columns."""
        return self.predictions[0].reward != self.predictions[-1].reward


@dataclass(frozen=True, slots=True)
class PredictionSet:
    """Predictions on one split, one column per program state (e.g. untrained, trained)."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[PredictionRow, ...]

    @classmethod
    def of(cls, name: str, columns: Mapping[str, Sequence[Scored]]) -> "PredictionSet":
        """Align scored predictions of the same examples (in the same order) into rows."""
        runs = list(columns.values())
        rows = []
        for scored in zip(*runs):
            first = scored[0]
            rows.append(PredictionRow(
                first.example.origin, dict(first.example.x), dict(first.example.y),
                tuple(Prediction(s.trace.output, s.trace.error, s.reward,
                                 {path: r.retrieved for path, r in s.trace.steps.items() if r.retrieved})
                      for s in scored),
            ))
        return cls(name, tuple(columns), tuple(rows))


def build(
    doc: Mapping[str, Any],
    *,
    images: Mapping[str, bytes] | None = None,
    predictions: Sequence[PredictionSet] = (),
) -> str:
    """The report's HTML for an artifact document, its plots (name -> PNG bytes) and predictions."""
    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_template), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["show"] = show
    env.filters["num"] = _num
    env.filters["metric"] = metric_text
    env.filters["count"] = count_text
    env.filters["short_origin"] = short_origin
    env.filters["reading_order"] = reading_order
    env.filters["brief"] = brief
    env.filters["breakable"] = breakable
    env.filters["origin_width"] = origin_width
    return env.get_template(TEMPLATE).render(**context(doc, images or {}, predictions))


def write(
    path: str | Path,
    doc: Mapping[str, Any],
    *,
    images: Mapping[str, bytes] | None = None,
    predictions: Sequence[PredictionSet] = (),
) -> Path:
    """Write the report atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    html = build(doc, images=images, predictions=predictions)
    # open(..., "x") rather than mkstemp: the page keeps the usual permissions (umask), not 0600
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8", newline="\n") as f:
            f.write(html)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _template(name: str) -> str:
    return resources.files("icldsl").joinpath(name).read_text(encoding="utf-8")


def show(value: Any) -> str:
    """A value as a person reads it: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def short_origin(origin: str) -> str:
    """`/long/path/to/test.jsonl:12` -> `test.jsonl:12` (the page shows the whole one on hover)."""
    return origin.replace("\\", "/").rsplit("/", 1)[-1]


def _num(value: Any, digits: int = 3) -> str:
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


_PARTS = re.compile(r"(?<=[:/])")  # an origin's or a name's parts: `intents:` `data_full.json:` `12`
_WITHIN = re.compile(r"(?<=[._-])")  # where a part itself may break, when it is wider than its column


def breakable(text: Any) -> Markup:
    """`text` escaped, with line breaks allowed only between its parts (after `:` and `/`)
    and, within a part too wide for its column, after `.`, `_` and `-`; never in the middle
    of a word. Each part is an inline block, so a column breaks `intents:data_full.json:12`
    at a colon before it breaks inside `data_full.json`."""
    def wrappable(part: str) -> Markup:
        return Markup("<wbr>").join(escape(piece) for piece in _WITHIN.split(part))

    parts = [p for p in _PARTS.split(str(text)) if p]
    if len(parts) <= 1:
        return wrappable(str(text))
    return Markup("<wbr>").join(Markup('<span class="part">{}</span>').format(wrappable(p)) for p in parts)


ORIGIN_MAX = 26  # characters: a longer origin breaks at its parts rather than widen its column more


def origin_width(origins: Sequence[str]) -> str:
    """The CSS width of a "from" column that holds the (short) `origins` on one line each,
    up to ORIGIN_MAX characters; `ch` of the table's font, which is wider than the
    monospace the origins are set in, so the padding fits too."""
    longest = max((len(short_origin(o)) for o in origins), default=0)
    return f"{max(min(longest, ORIGIN_MAX), 4) + 3}ch"


LONG = 80  # characters: a text value longer than this (such as reasoning) is shown after the short ones


def brief(value: Any) -> str:
    """`show(value)` cut to LONG characters, for a list of retrieved examples."""
    text = show(value)
    return text if len(text) <= LONG else text[: LONG - 1] + "…"


def reading_order(values: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """A prediction's fields with the short ones (the answer, a label, a number) before long
    text (the reasoning), each group in the model's order."""
    items = list(values.items())
    return sorted(items, key=lambda item: isinstance(item[1], str) and len(item[1]) > LONG)


# ---- what the template shows -------------------------------------------------------------------


def context(doc: Mapping[str, Any], images: Mapping[str, bytes], predictions: Sequence[PredictionSet]) -> dict:
    training = TrainingRecord.of_artifact(doc)
    program = doc["program"]
    return {
        "program": program,
        "source": doc.get("source") or {},
        "content_sha256": doc.get("content_sha256", ""),
        "headline": _headline(training),
        "scores": _scores(training.scores),
        "confusions": _confusions(program, predictions),
        "images": [
            {"name": name, "caption": CAPTIONS.get(name, ""),
             "uri": "data:image/png;base64," + base64.b64encode(images[name]).decode("ascii")}
            for name in (*PLOTS, *sorted(set(images) - set(PLOTS))) if name in images
        ],
        "settings": _settings(training.settings),
        "history": _history(training.history),
        "data": _data(training.data),
        "steps": _steps(doc),
        "usage": _usage(training),
        "predictions": predictions,
        "pools": _pools(doc),
    }


def _scores(scores: Mapping[str, ScoreRecord]) -> dict:
    order = sorted(scores, key=lambda label: (label not in ("untrained", "trained"), label != "untrained", label))
    metrics = {label: {name: (stat.mean, stat.std, list(stat.runs)) for name, stat in scores[label].stats.items()}
               for label in order}
    names = list(dict.fromkeys(n for m in metrics.values() for n in m))
    rows = []
    for name in names:
        cells = {label: m.get(name) for label, m in metrics.items()}
        before, after = cells.get("untrained"), cells.get("trained")
        rows.append({
            "metric": name,
            "cells": cells,
            "delta": after[0] - before[0] if before and after else None,
            "direction": direction(name),  # whether a rise is good (1), bad (-1) or a cost (0)
        })
    first = next(iter(scores.values()), None)
    runs = max((len(v[2]) for m in metrics.values() for v in m.values()), default=0)
    failures = {label: sum(scores[label].failures) for label in metrics}
    per_label = {label: label_summary(scores[label].labels or []) for label in metrics}
    return {"labels": list(metrics), "rows": rows, "runs": runs, "examples": first.examples if first else None,
            "failures": failures, "per_label": per_label if any(per_label.values()) else None}


def _headline(training: TrainingRecord) -> dict | None:
    """What training gained: trained minus untrained reward on the test set, paired over its
    examples with the standard error (an artifact from before it was recorded gives the
    difference of the means alone), and the retrieval baselines of the record."""
    if "untrained" not in training.scores or "trained" not in training.scores:
        return None
    before, after = training.scores["untrained"].reward.mean, training.scores["trained"].reward.mean
    gain = training.trained_minus_untrained
    mean, se = (after - before, None) if gain is None else (gain.mean, gain.se)
    return {"untrained": before, "trained": after, "mean": mean, "se": se, "n": None if gain is None else gain.n,
            "clear": se is not None and abs(mean) > 2 * se, "baselines": list(training.baselines)}


NO_OUTPUT = "(no output)"  # the confusion matrices' column of the predictions that have none


def _confusions(program: Mapping[str, Any], predictions: Sequence[PredictionSet]) -> list[dict]:
    """Per enum field of the program's output, the test set's predictions counted by expected
    label (rows) and predicted label (columns), for each program state the set has, the
    trained program's first. Labels in the order the enum declares them."""
    test = next((p for p in predictions if p.name == TEST_SET), None)
    if test is None or not test.rows:
        return []
    out = []
    for name, labels in enum_fields(ProgramSpec.from_json(program)).items():
        expected = [show(row.expected.get(name)) for row in test.rows]
        matrices = []
        for i, column in reversed(list(enumerate(test.columns))):
            predicted = [NO_OUTPUT if row.predictions[i].output is None else show(row.predictions[i].output.get(name))
                         for row in test.rows]
            order = list(dict.fromkeys([*map(show, labels), *expected, *predicted]))
            columns = [label for label in order if label != NO_OUTPUT and (label in expected or label in predicted)]
            columns += [NO_OUTPUT] if NO_OUTPUT in predicted else []
            pairs = Counter(zip(expected, predicted))
            rows = [{"label": e, "total": expected.count(e),
                     "cells": [{"n": pairs[e, p], "share": pairs[e, p] / expected.count(e), "right": p == e}
                               for p in columns]}
                    for e in order if e in expected]
            matrices.append({"column": column, "predicted": columns, "rows": rows,
                             "right": sum(pairs[e, e] for e in set(expected)), "total": len(expected)})
        out.append({"field": name, "matrices": matrices})
    return out


def call_text(call: Any) -> str:
    """`["name", {options}]` as the file writes it: `name(a: 1)`."""
    name, options = call
    return f"{name}({', '.join(f'{k}: {show(v)}' for k, v in (options or {}).items())})"


def _settings(train: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The train block's settings; those left unset (early stopping, budget) are left out."""
    rows = []
    for key, value in train.items():
        if value is None:
            continue
        if key == "reward":
            value = call_text(value)
        elif key == "optimizers":
            key, value = "optimizer", " then ".join(call_text(v) for v in value)
        rows.append((key.replace("_", " "), show(value)))
    return rows


def _history(record: HistoryRecord) -> dict:
    """Per epoch, each metric and its validation twin (see `metric_text` for how each reads)."""
    history = record.history
    keys = [k for n in metric_names(history) for k in (n, f"val_{n}") if k in history]
    epochs = max((len(v) for v in history.values()), default=0)
    rows = [{"epoch": i + 1, "values": [history[k][i] if i < len(history[k]) else None for k in keys]}
            for i in range(epochs)]
    initial = {k: v for k, v in record.initial.items() if k.startswith("val_")}
    if initial:
        rows.insert(0, {"epoch": 0, "values": [initial.get(k) for k in keys]})
    return {"keys": keys, "rows": rows, "best_epoch": record.best_epoch}


def _data(data: DataRecord | None) -> dict:
    if data is None:
        return {}
    order = {"train": 0, "validation": 1, "test": 2}
    fingerprints = [(part, digest, data.rows.get(part)) for part, digest in data.fingerprints.items()]
    return {
        **data.to_json(),
        "sizes": sorted(data.sizes.items(), key=lambda kv: order.get(kv[0], 3)),
        "fingerprints": sorted(fingerprints, key=lambda f: order.get(f[0], 3)),
    }


def _steps(doc: Mapping[str, Any]) -> list[dict]:
    """Every learned state with the step it belongs to (branch arms included)."""
    described = {}
    for item in doc["program"].get("steps", []):
        for step in [arm["step"] for arm in item["arms"]] if "arms" in item else [item]:
            described[step.get("path")] = step
    out = []
    for path, state in (doc.get("states") or {}).items():
        step = described.get(path, {})
        out.append({
            "path": path,
            "kind": step.get("kind", "?"),
            "model": step.get("model", "?"),
            "lm": step.get("lm", ""),
            "frozen": bool(state.get("frozen") or step.get("frozen")),
            "instructions": state.get("instructions", ""),
            "examples": state.get("examples", []),
            "retrieval": _retrieval(state.get("retrieval")),
        })
    return out


POOL_SHOWN = 20  # rows of a retrieval pool shown at first; the next ones behind a click
POOL_MAX = 500  # rows of a pool written into the page at all (a pool may hold 10,000)


def _retrieval(retrieval: Mapping[str, Any] | None) -> dict | None:
    """A step's retrieval (`Retrieval.to_json`) as the page shows it: k, order, the retriever
    in words, and the pool's first rows with its size."""
    if not retrieval:
        return None
    spec, examples = retrieval["retriever"], retrieval["examples"]
    if spec.get("kind") == "embedding":
        embedding = spec.get("embedding") or {}
        retriever = (f"embedding `{embedding.get('name')}` ({embedding.get('target')}), {spec.get('dimension')} "
                     "dimensions, cosine similarity")
    else:
        retriever = (f"{spec.get('kind')} (k1 {spec.get('k1')}, b {spec.get('b')}; tokens: {spec.get('tokens')}; "
                     f"{spec.get('terms', 0):,} terms, {spec.get('postings', 0):,} postings)")
    order = {"nearest_last": "the nearest example last, next to the input",
             "nearest_first": "the nearest example first"}.get(retrieval["order"], retrieval["order"])
    return {"k": retrieval["k"], "order": order, "retriever": retriever, "size": len(examples),
            "shown": examples[:POOL_SHOWN], "more": examples[POOL_SHOWN:POOL_MAX]}


def _pools(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Step path -> origin -> pool example, to show the examples a prediction retrieved."""
    pools = {}
    for path, state in (doc.get("states") or {}).items():
        retrieval = state.get("retrieval")
        if retrieval:
            pool: dict[str, Any] = {}
            for example in retrieval["examples"]:
                pool.setdefault(example["origin"], example)
            pools[path] = pool
    return pools


def _usage(training: TrainingRecord) -> dict:
    total = training.total_usage.to_json()
    phases = [("training and validation", training.history.usage.to_json()), ("all (with test runs)", total)]
    return {
        "total": total,
        "phases": [(name, u) for name, u in phases if u],
        "by_step": {k: v.to_json() for k, v in training.usage_by_step.items()},
        "by_lm": {k: v.to_json() for k, v in training.usage_by_lm.items()},
    }


# ---- what `icldsl fit` writes ------------------------------------------------------------------


def report_path(artifact_path: str | Path) -> Path:
    """`<stem>.report.html` beside the artifact."""
    return Path(artifact_path).parent / f"{stem(artifact_path)}.report.html"


def predictions_of(untrained: Sequence[Scored], trained: Sequence[Scored],
                   validation: Sequence[Scored] = ()) -> list[PredictionSet]:
    """The prediction tables of a fit: the test set before and after training (of the last
    run), and the validation set when its predictions were kept."""
    sets = [PredictionSet.of(TEST_SET, {"untrained": untrained, "trained": trained})]
    if validation:
        sets.append(PredictionSet.of("validation set", {"trained": validation}))
    return sets


def write_beside(artifact_path: str | Path, doc: Mapping[str, Any], *,
                 predictions: Sequence[PredictionSet] = ()) -> list[Path]:
    """The plots (`<stem>.<plot>.png`, see `plots.figures`) and `<stem>.report.html` beside an
    artifact; returns the paths written."""
    paths = plot_paths(artifact_path)
    images = write_all(doc, paths)
    report = write(report_path(artifact_path), doc, images=images, predictions=predictions)
    return [*(paths[name] for name in images), report]
