"""Rewards: how well a prediction matches the expected output, in [0, 1].

A reward is an async callable `reward(x, y_true, y_pred) -> Grade`; `y_pred` is
None when the program failed, which earns 0. A grade may carry feedback (why the
score is what it is) that reflective optimizers show their LM.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from ..options import FIELDS, Function, Signature


@dataclass(frozen=True, slots=True)
class Grade:
    score: float
    feedback: str | None = None


class Reward(Protocol):
    async def __call__(self, x: Mapping[str, Any], y_true: Mapping[str, Any],
                       y_pred: Mapping[str, Any] | None) -> Grade: ...


def mask(values: Mapping[str, Any], in_mask: list[str] | None, out_mask: list[str] | None) -> dict[str, Any]:
    """Keep only `in_mask` fields (when given), then drop `out_mask` fields."""
    kept = {k: v for k, v in values.items() if in_mask is None or k in in_mask}
    return {k: v for k, v in kept.items() if not out_mask or k not in out_mask}


def exact_match(*, in_mask: list[str] | None = None, out_mask: list[str] | None = None) -> Reward:
    """1.0 when the masked prediction equals the masked expected output, else 0.0."""

    async def reward(x: Mapping[str, Any], y_true: Mapping[str, Any], y_pred: Mapping[str, Any] | None) -> Grade:
        if y_pred is None:
            return Grade(0.0, "the program produced no output")
        return Grade(float(mask(y_true, in_mask, out_mask) == mask(y_pred, in_mask, out_mask)))

    return reward


REWARDS: Mapping[str, Function] = {
    "exact_match": Function(
        Signature(
            {"in_mask": FIELDS, "out_mask": FIELDS},
            doc="1 when the (masked) output equals the expected one, else 0",
        ),
        exact_match,
    ),
}
