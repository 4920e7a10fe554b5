"""Every reward and optimizer a train block may name: its options, their types and its
description, read by the checker, the compiler and the language server.

This module imports no implementation: each factory is named as `"module:name"` and
imported when a session makes it, so `icldsl check` loads neither numpy nor the runtime.
The defaults of the options live in the factories' own parameters (`Function.defaults`).
Also here: the checks of a reward's options that their types cannot express
(`problems`), which the compiler runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..language.options import EMBEDDING_NAME, FIELDS, LM_NAME, AtLeast, Choice, Either, Function, Signature
from ..runtime.retrieval import LABELS, LEXICAL, ORDERS
from ..user_code import UserCodeError, locate

# What a user's reward function may return.
RETURNS = 'a number in [0, 1], a bool, (score, feedback) or {"score": ..., "feedback": ...}'
MASKS = {"in_mask": FIELDS, "out_mask": FIELDS}

REWARDS: Mapping[str, Function] = {
    "exact_match": Function(
        Signature(
            {**MASKS, "tolerance": AtLeast(float, 0), "per_field": Choice(("accuracy", "f1"))},
            doc="1 when the masked output equals the expected one (numbers within an absolute `tolerance`, "
                "strings with surrounding whitespace ignored), else 0; with `per_field`, the share of fields "
                "that match (\"accuracy\") or the micro F1 over fields (\"f1\": a null on both sides counts "
                "as neither)",
        ),
        "icldsl.training.rewards:exact_match",
    ),
    "cosine_similarity": Function(
        Signature(
            {"embedding": EMBEDDING_NAME, **MASKS},
            required=("embedding",),
            doc="cosine similarity of the embeddings of the masked output and the expected one, clipped to [0, 1]",
        ),
        "icldsl.training.rewards:cosine_similarity",
    ),
    "lm_judge": Function(
        Signature(
            {"lm": LM_NAME, "instructions": str, "scale": AtLeast(int, 2)},
            required=("lm",),
            doc="an LM grades the output against the expected one on the `instructions` criteria, from 1 to "
                "`scale`, mapped to [0, 1]; its critique is the feedback",
        ),
        "icldsl.training.rewards:lm_judge",
    ),
    "python": Function(
        Signature(
            {"function": str},
            required=("function",),
            positional=("function",),
            doc='your own function, python("module:function"), called with (x, y_true, y_pred); it returns '
                + RETURNS,
        ),
        "icldsl.training.rewards:user_reward",
        resources=True,
    ),
}

SAMPLING = Choice(("best", "random", "softmax"))
COUNTS = {"nb_min_examples": AtLeast(int, 0), "nb_max_examples": AtLeast(int, 1)}

OPTIMIZERS: Mapping[str, Function] = {
    "random_few_shot": Function(
        Signature(
            {**COUNTS, "sampling": SAMPLING, "temperature": AtLeast(float, 0, strict=True)},
            doc="each step's examples drawn from the epoch's predictions: the best-rewarded first, uniformly, "
                "or by softmax over rewards; no LM calls",
        ),
        "icldsl.training.optimizers:RandomFewShot",
    ),
    "bootstrap_few_shot": Function(
        Signature(
            {**COUNTS, "threshold": float, "candidates": AtLeast(int, 1), "compare_on": AtLeast(int, 30)},
            doc="each step's examples are its own inputs and outputs in runs whose reward reached `threshold`; "
                "with `candidates` above 1, sets compared on validation and kept only when better by more than "
                "their standard error",
        ),
        "icldsl.training.optimizers:BootstrapFewShot",
    ),
    "labeled_few_shot": Function(
        Signature(
            {**COUNTS, "balanced": bool, "candidates": AtLeast(int, 1), "compare_on": AtLeast(int, 30)},
            doc="each step's examples are training rows with their expected outputs (labels taken in turn with "
                "`balanced`); candidate sets compared on validation, kept only when better by more than their "
                "standard error",
        ),
        "icldsl.training.optimizers:LabeledFewShot",
    ),
    "nearest_few_shot": Function(
        Signature(
            {"k": Either((AtLeast(int, 1), list[int])), "retriever": Either((Choice((LEXICAL,)), EMBEDDING_NAME)),
             "order": Choice(ORDERS), "threshold": float, "compare_on": AtLeast(int, 30),
             "labels": Either((Choice(LABELS), list[str])), "cascade": bool},
            doc="each call gets the k examples of the step's pool nearest its input (bm25, or an embedding "
                "model); k (and `labels`: \"all\" or only the \"retrieved\" examples' labels in an enum, or a "
                "list of both) chosen on validation, kept only when better by more than the standard error; "
                "`cascade`: unanimous examples answer without an LM call",
        ),
        "icldsl.training.nearest:NearestFewShot",
        resources=True,
    ),
    "omega": Function(
        Signature(
            {"lm": LM_NAME, "embedding": EMBEDDING_NAME, "population_size": AtLeast(int, 1),
             "children": AtLeast(int, 1), "mutation_temperature": AtLeast(float, 0),
             "crossover_temperature": AtLeast(float, 0), "diversity": AtLeast(float, 0),
             "sample_size": AtLeast(int, 1), "nb_failures": AtLeast(int, 1)},
            required=("lm", "embedding"),
            doc="evolves instructions at the end of each epoch: an LM mutates one step's instructions from "
                "failing predictions or merges two candidates', each child scored on the same sample; the "
                "fitter survive, near-duplicates (by embedding) penalised",
        ),
        "icldsl.training.omega:Omega",
    ),
    "reflective": Function(
        Signature(
            {"lm": LM_NAME, "proposals": AtLeast(int, 1), "minibatch_size": AtLeast(int, 1),
             "temperature": AtLeast(float, 0), "sample_size": AtLeast(int, 1)},
            required=("lm",),
            doc="at the end of each epoch an LM reflects on a step's failures and the reward's feedback and "
                "proposes instructions; candidates best on at least one validation example stay on a Pareto front",
        ),
        "icldsl.training.reflective:Reflective",
    ),
}


# ---- checks at compile time -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """A mistake in a reward's options that their types do not show; `option` is the one to point at."""

    option: str
    message: str
    label: str
    code: str = "invalid-value"
    help: str | None = None


def problems(name: str, options: Mapping[str, Any], search_path: Sequence[Path]) -> list[Problem]:
    """What is wrong with reward `name` called with `options` that the checker cannot see, found
    when the file is compiled: an empty `in_mask`, a `python` reward that cannot be found or
    called with three arguments (read from its source: compiling runs no user code)."""
    found = []
    if options.get("in_mask") == []:
        found.append(Problem("in_mask", "`in_mask` is empty, so nothing would be compared", "empty",
                             help="name the fields to compare, or leave `in_mask` out to compare them all"))
    if name == "python":
        ref = options["function"]
        try:
            function = locate(ref, search_path)
        except UserCodeError as exc:
            found.append(Problem("function", f"reward `python`: {exc}", "cannot load", "unknown-function",
                                 "the module must be importable, or sit beside the .icl file"))
        else:
            if not function.accepts(3):
                found.append(Problem("function", f"`{ref}` cannot be called with (x, y_true, y_pred)",
                                     "wrong parameters", help=f"its parameters are {function.signature_text()}; "
                                     "a reward function takes three: the input, the expected output and the "
                                     "prediction"))
    return found


