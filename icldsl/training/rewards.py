"""Rewards: how well a prediction matches the expected output, in [0, 1].

A reward is an async callable `reward(x, y_true, y_pred) -> Grade`; `y_pred` is
None when the program failed, which earns 0. A grade may carry feedback (why the
score is what it is) that reflective optimizers show their LM.

A reward never raises over one prediction: a judge LM or embedding model that
fails, or a user's function that raises or returns something unusable, scores 0
with the reason as feedback (logged at warning level the first time, then at
debug level). Settings that cannot work at all (`LMConfigError`) still stop the run.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import numpy as np
from pydantic import BaseModel, Field, create_model

from ..lm.base import Embedder, LMError
from ..runtime.generate import StepFailure
from ..language.catalogue.training import REWARDS, RETURNS
from .resources import BoundLM, Resources
from ..user_code import load_function

log = logging.getLogger(__name__)

NO_OUTPUT = "the program produced no output"


@dataclass(frozen=True, slots=True)
class Grade:
    score: float
    feedback: str | None = None


class Reward(Protocol):
    async def __call__(self, x: Mapping[str, Any], y_true: Mapping[str, Any],
                       y_pred: Mapping[str, Any] | None) -> Grade: ...


class _Failures:
    """Turns a reward's failures into 0-score grades, logging the first at warning level."""

    def __init__(self, reward: str) -> None:
        self.reward, self.logged = reward, False

    def __call__(self, reason: str) -> Grade:
        if self.logged:
            log.debug("%s: %s", self.reward, reason)
        else:
            log.warning("%s: %s (counted as 0; later failures of this reward are logged at debug level)",
                        self.reward, reason)
            self.logged = True
        return Grade(0.0, reason)


# ---- masks -------------------------------------------------------------------------

_WHOLE: Any = object()  # a mask tree leaf: the whole value at this path


def _tree(paths: Sequence[str]) -> dict[str, Any]:
    """Dotted paths as a tree: ["a", "b.c"] -> {"a": WHOLE, "b": {"c": WHOLE}}; a path covers those below it."""
    tree: dict[str, Any] = {}
    for path in paths:
        *parents, last = path.split(".")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
            if node is _WHOLE:
                break
        else:
            node[last] = _WHOLE
    return tree


def _keep(value: Any, tree: Any) -> Any:
    if tree is _WHOLE:
        return value
    if isinstance(value, list):
        return [_keep(item, tree) for item in value]
    if isinstance(value, Mapping):
        return {k: _keep(v, tree[k]) for k, v in value.items() if k in tree}
    return value  # None (an optional model left empty)


def _drop(value: Any, tree: Mapping[str, Any]) -> Any:
    if isinstance(value, list):
        return [_drop(item, tree) for item in value]
    if isinstance(value, Mapping):
        return {k: v if k not in tree else _drop(v, tree[k]) for k, v in value.items() if tree.get(k) is not _WHOLE}
    return value


def mask(values: Mapping[str, Any], in_mask: Sequence[str] | None, out_mask: Sequence[str] | None) -> dict[str, Any]:
    """Keep only the `in_mask` fields (all when None), then drop the `out_mask` ones.

    A dotted path such as "steps.value" reaches into nested models, and into every
    item of a list of models: `in_mask: ["steps.value"]` keeps `steps` with only
    the `value` of each step.
    """
    kept = dict(values) if in_mask is None else _keep(values, _tree(in_mask))
    return _drop(kept, _tree(out_mask)) if out_mask else kept


# ---- exact_match ----------------------------------------------------------------------

_MISSING: Any = object()


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any) -> str:
    """A value as feedback shows it: JSON, cut short."""
    return "nothing" if value is _MISSING else _clip(json.dumps(value, ensure_ascii=False))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _differences(expected: Any, got: Any, tolerance: float, path: str = "") -> list[str]:
    """Where `got` differs from `expected`, one line each, like `answer: expected 42, got 41`."""
    where = path or "output"
    if _is_number(expected) and _is_number(got):
        same = expected == got or abs(expected - got) <= tolerance
    elif isinstance(expected, str) and isinstance(got, str):
        same = expected.strip() == got.strip()
    elif isinstance(expected, Mapping) and isinstance(got, Mapping):
        return [line for key in dict.fromkeys([*expected, *got])
                for line in _differences(expected.get(key, _MISSING), got.get(key, _MISSING), tolerance,
                                         f"{path}.{key}" if path else key)]
    elif isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return [f"{where}: expected {len(expected)} items, got {len(got)}"]
        return [line for i, (e, g) in enumerate(zip(expected, got))
                for line in _differences(e, g, tolerance, f"{path}[{i}]")]
    else:
        same = expected == got and isinstance(expected, bool) == isinstance(got, bool)
    return [] if same else [f"{where}: expected {_short(expected)}, got {_short(got)}"]


def _listing(lines: list[str], most: int = 3) -> str:
    more = len(lines) - most
    return "; ".join(lines[:most]) + (f"; and {more} more" if more > 0 else "")


_DEFAULT = {name: function.signature.defaults for name, function in REWARDS.items()}


def exact_match(*, in_mask: list[str] | None = None, out_mask: list[str] | None = None,
                tolerance: float = _DEFAULT["exact_match"]["tolerance"], per_field: str | None = None) -> Reward:
    """1.0 when the masked prediction equals the masked expected output, else 0.0.

    Numbers (also nested) match when |expected - got| <= `tolerance`, an absolute
    tolerance (for a relative one, write a `python` reward); 3 and 3.0 are equal.
    Strings match after stripping leading and trailing whitespace; case counts.
    Lists match item by item. On a miss the feedback names the differing fields.

    With `per_field`, each top-level field left by the masks is compared alone (as
    above) and the score is the share of fields that match (`"accuracy"`) or the
    micro F1 over fields (`"f1"`, see `field_f1`).
    """
    REWARDS["exact_match"].signature.check("exact_match", {"in_mask": in_mask, "out_mask": out_mask,
                                                           "tolerance": tolerance, "per_field": per_field})

    async def reward(x: Mapping[str, Any], y_true: Mapping[str, Any], y_pred: Mapping[str, Any] | None) -> Grade:
        if y_pred is None:
            return Grade(0.0, NO_OUTPUT)
        expected, got = mask(y_true, in_mask, out_mask), mask(y_pred, in_mask, out_mask)
        if per_field is None:
            lines = _differences(expected, got, tolerance)
            return Grade(0.0, _listing(lines)) if lines else Grade(1.0)
        score, lines = (field_accuracy if per_field == "accuracy" else field_f1)(expected, got, tolerance)
        return Grade(score, _listing(lines) if lines else None)

    return reward


def _by_field(expected: Mapping[str, Any], got: Mapping[str, Any],
              tolerance: float) -> list[tuple[Any, Any, list[str]]]:
    """Each top-level field of either side: its expected value, its predicted one (_MISSING
    when absent) and the lines saying where they differ (none when they match; two empty
    values, see `_filled`, match)."""
    return [(e, g, [] if not _filled(e) and not _filled(g) else _differences(e, g, tolerance, key))
            for key in dict.fromkeys([*expected, *got])
            for e, g in [(expected.get(key, _MISSING), got.get(key, _MISSING))]]


def field_accuracy(expected: Mapping[str, Any], got: Mapping[str, Any],
                   tolerance: float = 0.0) -> tuple[float, list[str]]:
    """The share of fields (of either side) whose values match, with the lines naming the
    others; an empty field (null, absent or blank) matches an empty one. No fields: 1."""
    fields = _by_field(expected, got, tolerance)
    wrong = [line for _, _, lines in fields for line in lines]
    right = sum(not lines for _, _, lines in fields)
    return (right / len(fields) if fields else 1.0), wrong


def _filled(value: Any) -> bool:
    """Whether a field holds a value: not absent, null or a string of white space alone."""
    return value is not _MISSING and value is not None and not (isinstance(value, str) and not value.strip())


def field_f1(expected: Mapping[str, Any], got: Mapping[str, Any],
             tolerance: float = 0.0) -> tuple[float, list[str]]:
    """Micro F1 over fields, as slot filling is scored: a field predicted with a value is a
    true positive when the expected value is the same, else a false positive; an expected
    value not predicted (empty or different) is a false negative. So a wrong value counts
    once as each, and a field empty on both sides (null, absent or a blank string) as neither.
    F1 = 2 TP / (2 TP + FP + FN); 1 when both sides have no value at all."""
    tp = fp = fn = 0
    wrong = []
    for e, g, lines in _by_field(expected, got, tolerance):
        if not _filled(e) and not _filled(g):
            continue
        if lines:
            wrong += lines
            fp += _filled(g)
            fn += _filled(e)
        else:
            tp += 1
    return (2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0), wrong


# ---- cosine_similarity ------------------------------------------------------------------


def as_text(values: Mapping[str, Any]) -> str:
    """What is embedded: the value itself when one text field is left, else the fields' compact JSON."""
    if len(values) == 1:
        (only,) = values.values()
        if isinstance(only, str):
            return only
    return json.dumps(values, ensure_ascii=False)


def cosine_similarity(*, embedding: Embedder, in_mask: list[str] | None = None,
                      out_mask: list[str] | None = None) -> Reward:
    """The cosine similarity of the embeddings of the masked prediction and expected output
    (see `as_text`), clipped to [0, 1]; identical texts score 1 without embedding."""
    REWARDS["cosine_similarity"].signature.check("cosine_similarity", {"in_mask": in_mask, "out_mask": out_mask})
    failures = _Failures("reward cosine_similarity")

    async def reward(x: Mapping[str, Any], y_true: Mapping[str, Any], y_pred: Mapping[str, Any] | None) -> Grade:
        if y_pred is None:
            return Grade(0.0, NO_OUTPUT)
        expected, got = as_text(mask(y_true, in_mask, out_mask)), as_text(mask(y_pred, in_mask, out_mask))
        if expected == got:
            return Grade(1.0)
        try:
            a, b = (np.asarray(v, dtype=np.float64) for v in await embedding.embed([expected, got]))
        except LMError as exc:
            return failures(f"the embedding model {embedding.name} failed: {exc}")
        norms = float(np.linalg.norm(a) * np.linalg.norm(b))
        score = min(max(float(a @ b) / norms, 0.0), 1.0) if norms > 0 else 0.0
        return Grade(score, f"similarity {score:.2f}: expected {_short(expected)}, got {_short(got)}")

    return reward


# ---- lm_judge -------------------------------------------------------------------------

JUDGE_INSTRUCTIONS = "\n\n".join([
    "You grade the answer a program gave for one input. You see the `input`, a `reference` answer known to be "
    "right, and the `candidate` answer to grade.",
    "Grade the candidate on: {criteria}.",
    "Hold the candidate to the reference: its wording may differ, but a fact, number or label that disagrees "
    "with the reference is a mistake, and so is anything the reference has that the candidate leaves out. "
    "Length and confident tone earn nothing by themselves.",
    "First write the critique: in a few sentences, what the candidate gets wrong or misses and what would fix "
    "it, or, when nothing, why it is as good as the reference. Then give the score: a whole number from 1 "
    "(fails the criteria) to {scale} (as good as the reference).",
])


def verdict_model(scale: int) -> type[BaseModel]:
    """What the judge answers: a critique, then a score from 1 to `scale`."""
    return create_model(
        "Verdict",
        critique=(str, Field(description="What the candidate gets wrong or misses, and how to fix it")),
        score=(int, Field(ge=1, le=scale, description=f"From 1 (fails the criteria) to {scale} (as good as "
                                                      "the reference)")),
    )


def lm_judge(*, lm: BoundLM, instructions: str = _DEFAULT["lm_judge"]["instructions"],
             scale: int = _DEFAULT["lm_judge"]["scale"]) -> Reward:
    """An LM grades the prediction against the expected output on the `instructions` criteria,
    from 1 to `scale`; the score maps to [0, 1] ((s - 1) / (scale - 1)) and the critique is the
    feedback. A judge that gives no valid verdict scores 0, saying so."""
    REWARDS["lm_judge"].signature.check("lm_judge", {"instructions": instructions, "scale": scale})
    model = verdict_model(scale)
    prompt = JUDGE_INSTRUCTIONS.format(criteria=instructions, scale=scale)
    failures = _Failures(f"reward lm_judge ({lm.name})")

    async def reward(x: Mapping[str, Any], y_true: Mapping[str, Any], y_pred: Mapping[str, Any] | None) -> Grade:
        if y_pred is None:
            return Grade(0.0, NO_OUTPUT)
        try:
            verdict = await lm.ask(model, prompt, {"input": x, "reference": y_true, "candidate": y_pred})
        except StepFailure as failure:
            return failures(f"the judge failed: {failure}")
        return Grade((verdict["score"] - 1) / (scale - 1), verdict["critique"])

    return reward


# ---- python ---------------------------------------------------------------------------

def _as_grade(value: Any) -> Grade:
    """What a user's reward function returned, as a Grade; ValueError (saying "returned ...") when it is
    none of `RETURNS`."""
    feedback = None
    if isinstance(value, tuple) and len(value) == 2:
        value, feedback = value
    elif isinstance(value, Mapping) and "score" in value and set(value) <= {"score", "feedback"}:
        value, feedback = value["score"], value.get("feedback")
    if feedback is not None and not isinstance(feedback, str):
        raise ValueError(f"returned feedback that is a {type(feedback).__name__}, not a string")
    if isinstance(value, (bool, np.bool_)):  # numpy's bool is not a numbers.Real
        return Grade(float(value), feedback)
    if not isinstance(value, numbers.Real):
        raise ValueError(f"returned {_clip(repr(value))}; return {RETURNS}")
    score = float(value)
    if not 0.0 <= score <= 1.0:  # NaN too
        raise ValueError(f"returned the score {score}, outside [0, 1]")
    return Grade(score, feedback)


def user_reward(*, function: str, resources: Resources) -> Reward:
    """The user's function `module:function` (from `sys.path` or the .icl file's folder) as a reward.

    It is called as `function(x, y_true, y_pred)` with copies of the input, the expected
    output and the prediction as plain dicts, and is not called when the program failed
    (that scores 0). It may be sync (kept quick: it runs on the event loop) or async, and
    returns a number in [0, 1], a bool (1 or 0), `(score, feedback)` or
    `{"score": ..., "feedback": ...}`. A score outside [0, 1] is an error, not clipped:
    like a raised exception or any other return value, it scores 0 with the error as feedback.
    """
    REWARDS["python"].signature.check("python", {"function": function})
    call = load_function(function, resources.search_path)
    failures = _Failures(f'reward python("{function}")')

    async def reward(x: Mapping[str, Any], y_true: Mapping[str, Any], y_pred: Mapping[str, Any] | None) -> Grade:
        if y_pred is None:
            return Grade(0.0, NO_OUTPUT)
        try:
            result = call(*copy.deepcopy((dict(x), dict(y_true), dict(y_pred))))
            if inspect.isawaitable(result):
                result = await result
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user's function: whatever it raises scores 0
            return failures(f"{function} raised {type(exc).__name__}: {exc}")
        try:
            return _as_grade(result)
        except ValueError as exc:
            return failures(f"{function} {exc}")

    return reward
