"""A prediction paired with the example it answers and the reward it earned."""

from __future__ import annotations

from dataclasses import dataclass

from ..datasets.base import Example
from ..runtime.state import Trace


@dataclass(frozen=True, slots=True)
class Scored:
    example: Example
    trace: Trace
    reward: float
    feedback: str | None = None  # the reward's explanation, when it gives one

