"""Means with their spread: what a comparison of candidates reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True, slots=True)
class Estimate:
    """The mean of `n` per-example values, their standard deviation and the mean's standard error."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> "Estimate":
        data = np.asarray(values, dtype=float)
        if data.size == 0:
            return cls(0.0, 0.0, 0)
        return cls(float(data.mean()), float(data.std(ddof=1)) if data.size > 1 else 0.0, int(data.size))

    @property
    def stderr(self) -> float:
        return self.std / np.sqrt(self.n) if self.n > 1 else 0.0

    def to_json(self) -> dict[str, float | int]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "stderr": self.stderr}

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.stderr:.3f} (n={self.n})"


def paired(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """The per-example difference `a - b` of two candidates scored on the same examples."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison of {len(a)} and {len(b)} values")
    return Estimate.of(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))


def beats(a: Sequence[float], b: Sequence[float], z: float = 1.0) -> bool:
    """Whether `a` beats `b` on the same examples by more than `z` standard errors of the difference."""
    diff = paired(a, b)
    return diff.mean > z * diff.stderr and diff.mean > 0
