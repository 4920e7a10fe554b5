"""Building blocks for optimizer tests: a context without a trainer around it."""

from __future__ import annotations

from typing import Any

import numpy as np

from icldsl.training.context import Context
from icldsl.training.resources import Resources


async def _no_evaluation(states, examples, label):
    raise AssertionError("this optimizer was not expected to evaluate candidates")


def context(rng: np.random.Generator, **fields: Any) -> Context:
    """A Context for calling `propose` directly; pass `program`, `evaluate`, ... as a test needs."""
    defaults = {"program": None, "reward": None, "train": (), "validation": (), "resources": Resources(),
                "evaluate": _no_evaluation}
    return Context(rng=rng, **{**defaults, **fields})
