"""Building blocks for optimizer tests: a context without a trainer around it."""

from __future__ import annotations

from typing import Any

import numpy as np

from icldsl.training.context import Context
from icldsl.training.resources import Resources
from tests.scripted import last_input


async def _no_evaluation(states, examples, label):
    raise AssertionError("this optimizer was not expected to evaluate candidates")


def context(rng: np.random.Generator, **fields: Any) -> Context:
    """A Context for calling `propose` directly; pass `program`, `evaluate`, ... as a test needs."""
    defaults = {"program": None, "reward": None, "train": (), "validation": (), "resources": Resources(),
                "evaluate": _no_evaluation}
    return Context(rng=rng, **{**defaults, **fields})

# A program whose step `p/a` an instruction optimizer can improve, and one with a frozen step before it.
INSTRUCTION_SOURCE = """
model Q { question: str "A question" }
model H { hint: str "A hint" }
model A { answer: float "The number" }
lm solver = "local/smollm2-135m"
program p "Answer questions" { input q: Q  a = generate A from q instructions "Answer."  output a }
program two { input q: Q  h = frozen generate H from q instructions "Hint."  a = generate A from q + h  output a }
"""


def question_number(request) -> int:
    """The number in the question `q<N>` a request asks."""
    return int(last_input(request)["question"][1:])
