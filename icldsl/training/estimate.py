"""Means with their spread: what a comparison of candidates reports, and the gate a switch of
a fit's states passes (`refusal`: the few-shot optimizers' candidates, a new epoch's states;
omega's and reflective's instructions are chosen by `beats` alone, on their own sample size)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..language.catalogue.training import MIN_COMPARED


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

    def above(self, z: float = 1.0) -> bool:
        """Whether this difference is a win by more than `z` standard errors."""
        return self.mean > z * self.stderr and self.mean > 0

    def __str__(self) -> str:
        return f"{self.mean:.3f} ± {self.stderr:.3f} (n={self.n})"


def paired(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """The per-example difference `a - b` of two candidates scored on the same examples."""
    if len(a) != len(b):
        raise ValueError(f"paired comparison of {len(a)} and {len(b)} values")
    return Estimate.of(np.asarray(a, dtype=float) - np.asarray(b, dtype=float))


def beats(a: Sequence[float], b: Sequence[float], z: float = 1.0) -> bool:
    """Whether `a` beats `b` on the same examples by more than `z` standard errors of the difference."""
    return paired(a, b).above(z)


# MIN_COMPARED (declared with `compare_on`, which may not go below it): the fewest validation
# rows a switch may be decided on. The few-shot optimizers refuse to switch on fewer; the epoch checkpoint
# gates on at least this many, and below it keeps an epoch that is strictly better.


def refusal(a: Sequence[float], b: Sequence[float], z: float = 1.0, minimum: int = MIN_COMPARED) -> str | None:
    """Why `a` may not replace `b` (scored on the same examples), or None when it may: it must
    beat `b` by more than `z` standard errors of the paired difference (`beats`), on at
    least `minimum` examples."""
    diff = paired(a, b)
    if not diff.above(z):
        return (f"{diff.mean:+.3f} ± {diff.stderr:.3f} (paired, n={diff.n}) is not more than "
                f"{'one standard error' if z == 1 else f'{z} standard errors'}")
    if diff.n < minimum:
        return (f"{diff.mean:+.3f} ± {diff.stderr:.3f} on {diff.n} validation rows, fewer than the "
                f"{minimum} a switch needs (raise validation_split, or compare_on)")
    return None
