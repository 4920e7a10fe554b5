"""`icldsl diff A B`: what changed between two artifacts.

Per step path: the instructions (a unified diff), the few-shot examples added,
removed or changed (matched by origin, the dataset row, with their rewards), their
order and the frozen flag; for a step that retrieves examples, its settings (k,
order, the retriever without its vectors) and its pool's rows added, removed or changed. Then the test scores untrained and trained (mean ± std
of the reward and of every metric), the training settings, the source file and its
sha256, the data (loader, fingerprints, sizes), the program (models, LMs, steps),
and the rest of the training record (history, kept epoch, usage). Values are
compared as the artifacts store them; other changes appear as `key: old -> new`.
"""

from __future__ import annotations

import difflib
import json
from collections import Counter
from typing import Any, Mapping, Sequence

from .artifact import HASH_KEY
from .training.training_record import ScoreRecord, TrainingRecord

SECTIONS = ("source", "data", "settings", "program", "steps", "scores", "training", "other")
SCORED = ("untrained", "trained")
SHOWN = 12  # changed values a text section lists; --json has them all
_STATS = ("_mean", "_std")


def diff_docs(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    """The differences of two artifact documents, as JSON: a section per kind of change
    (only those that changed), and `identical`."""
    ta, tb = TrainingRecord.of_artifact(a), TrainingRecord.of_artifact(b)
    found = {
        "source": _changes(a.get("source"), b.get("source")),
        "data": _changes(*(None if t.data is None else t.data.to_json() for t in (ta, tb))),
        "settings": _changes(dict(ta.settings), dict(tb.settings)),
        "program": _changes(a.get("program"), b.get("program")),
        "steps": _steps(a.get("states") or {}, b.get("states") or {}),
        "scores": _scores(ta.scores, tb.scores),
        "training": _changes(_record_rest(ta), _record_rest(tb)),
        "other": _changes(*({k: v for k, v in d.items()
                             if k not in ("source", "training", "program", "states", HASH_KEY)} for d in (a, b))),
    }
    found = {k: v for k, v in found.items() if v}
    return {"identical": not found, **found}


# ---- leaves ------------------------------------------------------------------------


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves by path: `a.b`, `list[i]`, and `list[name]` for lists of objects with distinct names."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out.update(_flat(inner, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        names = [v.get("name") for v in value]
        keys = names if all(isinstance(n, str) for n in names) and len(set(names)) == len(names) \
            else range(len(value))
        out = {}
        for key, inner in zip(keys, value):
            out.update(_flat(inner, f"{prefix}[{key}]"))
        return out
    return {prefix: value}


def _changes(a: Any, b: Any) -> dict[str, list[Any]]:
    """`path: [old, new]` for every leaf that differs (None where one side has no such leaf)."""
    fa, fb = _flat(a), _flat(b)
    return {key: [fa.get(key), fb.get(key)] for key in sorted({*fa, *fb}, key=str)
            if fa.get(key) != fb.get(key) or (key in fa) != (key in fb)}


def _record_rest(record: TrainingRecord) -> dict[str, Any]:
    """The training record as the artifact stores it, without what other sections show:
    settings, data, the scores' means and stds."""
    rest = {k: v for k, v in record.to_json().items() if k not in ("train", "data", "scores")}
    rest["scores"] = {when: {k: v for k, v in s.to_json().items() if not k.endswith(_STATS)}
                      for when, s in record.scores.items()}
    return rest


# ---- steps -------------------------------------------------------------------------


def _steps(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted({*a, *b}):
        if path not in b or path not in a:
            out[path] = {"only_in": "a" if path in a else "b"}
            continue
        sa, sb = a[path], b[path]
        change: dict[str, Any] = {}
        if sa.get("instructions") != sb.get("instructions"):
            old, new = sa.get("instructions") or "", sb.get("instructions") or ""
            change["instructions"] = {"a": old, "b": new, "diff": [line.rstrip("\n") for line in difflib.unified_diff(
                old.splitlines(keepends=True), new.splitlines(keepends=True), "a", "b", n=1)][2:]}
        examples = _examples(sa.get("examples") or [], sb.get("examples") or [])
        if examples:
            change["examples"] = examples
        retrieval = _retrieval(sa.get("retrieval"), sb.get("retrieval"))
        if retrieval:
            change["retrieval"] = retrieval
        rest = _changes(*({k: v for k, v in s.items() if k not in ("instructions", "examples", "retrieval")}
                          for s in (sa, sb)))
        change.update(rest)
        if change:
            out[path] = change
    return out


def _keyed(examples: Sequence[Mapping[str, Any]]) -> dict[tuple, Mapping[str, Any]]:
    """Examples by (origin, occurrence): a row shown twice is two examples."""
    seen: Counter = Counter()
    keyed = {}
    for example in examples:
        origin = example.get("origin")
        keyed[(origin, seen[origin])] = example
        seen[origin] += 1
    return keyed


def _examples(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    ka, kb = _keyed(a), _keyed(b)
    shared = [k for k in ka if k in kb]
    out: dict[str, Any] = {
        "removed": [ka[k] for k in ka if k not in kb],
        "added": [kb[k] for k in kb if k not in ka],
        "changed": [{"a": ka[k], "b": kb[k]} for k in shared if ka[k] != kb[k]],
        "reordered": shared != [k for k in kb if k in ka],
    }
    return {k: v for k, v in out.items() if v}


def _retrieval(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a step retrieves, changed: its settings (`path: [old, new]`; vectors are left to
    their sha256) and its pool's examples, matched by origin as the fixed examples are."""
    if a is None and b is None:
        return {}
    if a is None or b is None:
        return {"only_in": "a" if b is None else "b", "pool": len((a or b).get("examples") or [])}
    settings = _changes(*({k: v for k, v in r.items() if k != "examples"} for r in (a, b)))
    out: dict[str, Any] = {"settings": {k: v for k, v in settings.items() if k != "retriever.vectors"},
                           "pool": _examples(a.get("examples") or [], b.get("examples") or [])}
    out["pool"].pop("reordered", None)  # a pool is searched, not read in order
    return {k: v for k, v in out.items() if v}


# ---- scores ------------------------------------------------------------------------


def _scores(a: Mapping[str, ScoreRecord], b: Mapping[str, ScoreRecord]) -> dict[str, Any]:
    """Per evaluation (untrained, trained) and metric: {"a": {mean, std}, "b": ...} where they differ."""
    out: dict[str, Any] = {}
    for when in [w for w in SCORED if w in a or w in b] + sorted({*a, *b} - set(SCORED)):
        sa, sb = (s[when].stats if when in s else {} for s in (a, b))
        for name in sorted({*sa, *sb}, key=lambda m: (m != "reward", m)):
            va, vb = ({"mean": s[name].mean, "std": s[name].std} if name in s else None for s in (sa, sb))
            if va != vb:
                out.setdefault(when, {})[name] = {"a": va, "b": vb}
    return out


# ---- text --------------------------------------------------------------------------


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value


def show(value: Any, width: int = 80) -> str:
    """A value on one line: a sha256 shortened, floats to 4 decimals, long text cut."""
    if value is None:
        return "(none)"
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "…"
    text = value if isinstance(value, str) else json.dumps(_rounded(value), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _stat_text(stat: Mapping[str, float] | None) -> str:
    return "(none)" if stat is None else f"{stat['mean']:.3f} ± {stat['std']:.3f}"


def format_diff(result: Mapping[str, Any], a: str, b: str) -> str:
    """The differences as `icldsl diff` prints them."""
    if result["identical"]:
        return f"{a} and {b} are identical"
    lines = [f"--- {a}", f"+++ {b}"]
    for section in ("source", "data", "settings", "program"):
        lines += _values(result, section)
    for path, change in result.get("steps", {}).items():
        if "only_in" in change:
            lines.append(f"step {path}: only in {a if change['only_in'] == 'a' else b}")
            continue
        lines.append(f"step {path}:")
        if "instructions" in change:
            lines += ["  instructions:", *(f"    {line}" for line in change["instructions"]["diff"])]
        examples = change.get("examples", {})
        if examples:
            counts = [f"{len(examples[k])} {k}" for k in ("removed", "added", "changed") if examples.get(k)]
            lines.append("  examples: " + ", ".join(counts + (["reordered"] if examples.get("reordered") else [])))
            lines += _example_lines(examples)
        lines += _retrieval_lines(change.get("retrieval"), a, b)
        for key, value in change.items():
            if key not in ("instructions", "examples", "retrieval"):
                lines.append(f"  {key}: {show(value[0])} -> {show(value[1])}")
    if "scores" in result:
        lines.append("scores (test, mean ± std over runs):")
        for when, metrics in result["scores"].items():
            for name, pair in metrics.items():
                delta = "" if pair["a"] is None or pair["b"] is None else \
                    f"  ({pair['b']['mean'] - pair['a']['mean']:+.3f})"
                lines.append(f"  {when:<10} {name:<12} {_stat_text(pair['a'])} -> {_stat_text(pair['b'])}{delta}")
    for section in ("training", "other"):
        lines += _values(result, section)
    return "\n".join(lines)


def _example_lines(examples: Mapping[str, Any], most: int | None = None) -> list[str]:
    """Examples removed, added and changed, a line each (the first `most` of each kind)."""
    lines = []
    for sign, key in (("-", "removed"), ("+", "added")):
        for ex in examples.get(key, [])[:most]:
            lines.append(f"    {sign} {ex.get('origin')} reward {ex.get('reward', 0.0):.3f}: "
                         f"{show(ex.get('inputs'), 60)} => {show(ex.get('output'), 60)}")
    for pair in examples.get("changed", [])[:most]:
        old, new = pair["a"], pair["b"]
        parts = [f"{k} {show(old.get(k), 50)} -> {show(new.get(k), 50)}" for k in ("output", "reward", "inputs")
                 if old.get(k) != new.get(k)]
        lines.append(f"    ~ {new.get('origin')}: " + "; ".join(parts))
    return lines


def _retrieval_lines(change: Mapping[str, Any] | None, a: str, b: str) -> list[str]:
    if not change:
        return []
    if "only_in" in change:
        return [f"  retrieval: only in {a if change['only_in'] == 'a' else b} (a pool of {change['pool']})"]
    lines = [f"  retrieval {key}: {show(old)} -> {show(new)}" for key, (old, new) in change.get("settings", {}).items()]
    pool = change.get("pool", {})
    if pool:
        counts = [f"{len(pool[k])} {k}" for k in ("removed", "added", "changed") if pool.get(k)]
        lines.append("  pool: " + ", ".join(counts) + (f" (the first {SHOWN} of each shown; --json has them all)"
                                                      if any(len(pool.get(k, [])) > SHOWN for k in pool) else ""))
        lines += _example_lines(pool, SHOWN)
    return lines


def _values(result: Mapping[str, Any], section: str) -> list[str]:
    changes = list(result.get(section, {}).items())
    if not changes:
        return []
    lines = [f"{section}:", *(f"  {key}: {show(old)} -> {show(new)}" for key, (old, new) in changes[:SHOWN])]
    if len(changes) > SHOWN:
        lines.append(f"  ... and {len(changes) - SHOWN} more (--json lists them all)")
    return lines
