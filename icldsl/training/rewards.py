"""Rewards: how well a prediction matches the expected output, in [0, 1]."""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..options import FIELDS, Function, Signature

RewardFn = Callable[[Mapping[str, Any], Mapping[str, Any] | None], float]


def mask(values: Mapping[str, Any], in_mask: list[str] | None, out_mask: list[str] | None) -> dict[str, Any]:
    """Keep only `in_mask` fields (when given), then drop `out_mask` fields."""
    kept = {k: v for k, v in values.items() if in_mask is None or k in in_mask}
    return {k: v for k, v in kept.items() if not out_mask or k not in out_mask}


def exact_match(*, in_mask: list[str] | None = None, out_mask: list[str] | None = None) -> RewardFn:
    """1.0 when the masked prediction equals the masked expected output, else 0.0.

    A failed prediction (`None`) earns 0.
    """

    def reward(y_true: Mapping[str, Any], y_pred: Mapping[str, Any] | None) -> float:
        if y_pred is None:
            return 0.0
        return float(mask(y_true, in_mask, out_mask) == mask(y_pred, in_mask, out_mask))

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
