"""Every reward, optimizer and train setting a train block may name, each option declared
once: its type (with its range), its default and one line of doc.

The checker, the compiler and the language server read these declarations; the factories
(`training/rewards.py`, `optimizers.py`, `nearest.py`, `omega.py`, `reflective.py`) take
their defaults from them and refuse, through `Signature.check`, exactly the values the
checker refuses. Each factory is named as `"module:name"` and imported only when a session
makes it, so `icldsl check` loads neither numpy nor the runtime. Also here: the checks of a
reward's options that their types cannot express (`problems`), which the compiler runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ...user_code import UserCodeError, locate
from ..options import (CONCURRENCY, EMBEDDING_NAME, FIELDS, LM_NAME, AtLeast, Between, Choice, Either, Function,
                       ListOf, Option, Signature, Within)

# The fewest validation rows a switch may be decided on: below it, the standard error of a
# paired difference is itself too uncertain to gate on (a rise of 2 rows of 12 looks like
# 1.5 standard errors). `compare_on` may not go below it; `training.estimate` gates on it.
MIN_COMPARED = 30

# How `nearest_few_shot` retrieves (`runtime.retrieval` implements them).
LEXICAL = "bm25"  # the lexical retriever; any other `retriever` names an embedding block
ORDERS = ("nearest_last", "nearest_first")
LABELS = ("all", "retrieved")
SHARE = Within(float, 0, 1)  # a `cascade` share: the part of the retrieved examples that must agree
VOTE_WEIGHT = AtLeast(float, 0)  # how much the retrieved examples' vote counts beside the LM's score

# What a user's reward function may return.
RETURNS = 'a number in [0, 1], a bool, (score, feedback) or {"score": ..., "feedback": ...}'
DEFAULT_CRITERIA = "correctness: the candidate says what the reference says"
SAMPLING = Choice(("best", "random", "softmax"))

MASKS = {
    "in_mask": Option(FIELDS, doc="compare only these fields of the output (dotted paths reach nested ones)"),
    "out_mask": Option(FIELDS, doc="leave these fields of the output out of the comparison"),
}


def _counts(low: int, high: int) -> dict[str, Option]:
    return {"nb_min_examples": Option(AtLeast(int, 0), low, "the fewest examples a step is given"),
            "nb_max_examples": Option(AtLeast(int, 1), high, "the most examples a step is given")}


def counts_in_order(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """`nb_min_examples` may not be above `nb_max_examples`."""
    low, high = values.get("nb_min_examples"), values.get("nb_max_examples")
    if isinstance(low, int) and isinstance(high, int) and low > high:
        return [("nb_min_examples", f"nb_min_examples ({low}) is above nb_max_examples ({high})")]
    return []


def _compare_on(what: str) -> Option:
    return Option(AtLeast(int, MIN_COMPARED), 50, f"validation examples {what} compared on (all when fewer)")


REWARDS: Mapping[str, Function] = {
    "exact_match": Function(
        Signature.declare(
            {**MASKS,
             "tolerance": Option(AtLeast(float, 0), 0.0, "the absolute difference within which two numbers match"),
             "per_field": Option(Choice(("accuracy", "f1")), doc="score the share of matching fields, or their F1")},
            doc="1 when the masked output equals the expected one (numbers within an absolute `tolerance`, "
                "strings with surrounding whitespace ignored), else 0; with `per_field`, the share of fields "
                "that match (\"accuracy\") or the micro F1 over fields (\"f1\": a null on both sides counts "
                "as neither)",
        ),
        "icldsl.training.rewards:exact_match",
    ),
    "cosine_similarity": Function(
        Signature.declare(
            {"embedding": Option(EMBEDDING_NAME, doc="the embedding block that embeds both texts"), **MASKS},
            required=("embedding",),
            doc="cosine similarity of the embeddings of the masked output and the expected one, clipped to [0, 1]",
        ),
        "icldsl.training.rewards:cosine_similarity",
    ),
    "lm_judge": Function(
        Signature.declare(
            {"lm": Option(LM_NAME, doc="the lm that judges"),
             "instructions": Option(str, DEFAULT_CRITERIA, "the criteria the judge grades on"),
             "scale": Option(AtLeast(int, 2), 5, "the highest grade (the lowest is 1)")},
            required=("lm",),
            doc="an LM grades the output against the expected one on the `instructions` criteria, from 1 to "
                "`scale`, mapped to [0, 1]; its critique is the feedback",
        ),
        "icldsl.training.rewards:lm_judge",
    ),
    "python": Function(
        Signature.declare(
            {"function": Option(str, doc='the reward function, "module:function"')},
            required=("function",),
            positional=("function",),
            doc='your own function, python("module:function"), called with (x, y_true, y_pred); it returns '
                + RETURNS,
        ),
        "icldsl.training.rewards:user_reward",
        resources=True,
    ),
}

OPTIMIZERS: Mapping[str, Function] = {
    "random_few_shot": Function(
        Signature.declare(
            {**_counts(1, 3),
             "sampling": Option(SAMPLING, "best", "the order examples are drawn in: by reward, uniformly, or by "
                                                  "softmax over rewards"),
             "temperature": Option(AtLeast(float, 0, strict=True), 0.3, "the softmax temperature of `sampling: "
                                                                        "\"softmax\"`")},
            doc="each step's examples drawn from the epoch's predictions: the best-rewarded first, uniformly, "
                "or by softmax over rewards; no LM calls",
        ),
        "icldsl.training.optimizers:RandomFewShot",
        problems=counts_in_order,
    ),
    "bootstrap_few_shot": Function(
        Signature.declare(
            {**_counts(1, 3),
             "threshold": Option(float, 1.0, "the reward a run must reach for its steps to become examples"),
             "candidates": Option(AtLeast(int, 1), 1, "example sets compared at the end of each epoch (1: redrawn "
                                                      "after every batch, no comparison)"),
             "compare_on": _compare_on("candidates are")},
            doc="each step's examples are its own inputs and outputs in runs whose reward reached `threshold`; "
                "with `candidates` above 1, sets compared on validation and kept only when better by more than "
                "their standard error",
        ),
        "icldsl.training.optimizers:BootstrapFewShot",
        problems=counts_in_order,
    ),
    "labeled_few_shot": Function(
        Signature.declare(
            {**_counts(2, 4),
             "balanced": Option(bool, True, "take an enum field's labels in turn"),
             "candidates": Option(AtLeast(int, 1), 4, "example sets compared at the end of each epoch"),
             "compare_on": _compare_on("candidates are")},
            doc="each step's examples are training rows with their expected outputs (labels taken in turn with "
                "`balanced`); candidate sets compared on validation, kept only when better by more than their "
                "standard error",
        ),
        "icldsl.training.optimizers:LabeledFewShot",
        problems=counts_in_order,
    ),
    "nearest_few_shot": Function(
        Signature.declare(
            {"k": Option(Either((AtLeast(int, 1), ListOf(AtLeast(int, 1)))), (4, 8),
                         "examples retrieved per call, or the counts to choose from on validation"),
             "retriever": Option(Either((Choice((LEXICAL,)), EMBEDDING_NAME)), LEXICAL,
                                 f'"{LEXICAL}", or the embedding block that finds the nearest examples'),
             "order": Option(Choice(ORDERS), "nearest_last", "where the nearest example goes: last (next to the "
                                                             "input) or first"),
             "threshold": Option(float, 1.0, "the reward a run must reach to enter a pool made of runs"),
             "compare_on": _compare_on("the choices of k are"),
             "labels": Option(Either((Choice(LABELS), ListOf(Choice(LABELS)))), "all",
                              "an enum field offers all its labels, or only the retrieved examples' (a list: "
                              "choose on validation)"),
             "cascade": Option(Either((bool, SHARE, ListOf(Either((bool, SHARE))))), False,
                               "the vote of the retrieved examples answers without an LM call when at least this "
                               "share of them carry it (true: all of them; 0: always; a list: choose on "
                               "validation)"),
             "vote_weight": Option(Either((bool, VOTE_WEIGHT, ListOf(Either((bool, VOTE_WEIGHT))))), False,
                                   "the LM scores each output the retrieved examples carry, adding this weight "
                                   "times the log of the examples' vote for it, instead of generating (true: 1; "
                                   "false: generate; a list: choose on validation; local LMs only)")},
            doc="each call gets the k examples of the step's pool nearest its input (bm25, or an embedding "
                "model); k (and `labels`: \"all\" or only the \"retrieved\" examples' labels in an enum, or a "
                "list of both) chosen on validation, kept only when better by more than the standard error; "
                "`cascade`: the vote of the examples answers without an LM call when at least this share of them "
                "carry it (true: all of them), or a list of shares to choose from on validation; `vote_weight`: "
                "the LM scores the retrieved outputs, weighed with their vote, instead of generating",
        ),
        "icldsl.training.nearest:NearestFewShot",
        resources=True,
    ),
    "omega": Function(
        Signature.declare(
            {"lm": Option(LM_NAME, doc="the lm that mutates and merges instructions"),
             "embedding": Option(EMBEDDING_NAME, doc="the embedding block that measures how alike candidates are"),
             "population_size": Option(AtLeast(int, 1), 8, "candidates kept from one epoch to the next"),
             "children": Option(AtLeast(int, 1), 4, "candidates made each epoch"),
             "mutation_temperature": Option(AtLeast(float, 0), 0.7, "the decoding temperature of a mutation"),
             "crossover_temperature": Option(AtLeast(float, 0), 0.3, "the decoding temperature of a crossover"),
             "diversity": Option(AtLeast(float, 0), 0.1, "how much likeness to kept candidates costs"),
             "sample_size": Option(AtLeast(int, 1), 50, "validation examples each candidate is scored on"),
             "nb_failures": Option(AtLeast(int, 1), 4, "failing predictions a mutation is shown")},
            required=("lm", "embedding"),
            doc="evolves instructions at the end of each epoch: an LM mutates one step's instructions from "
                "failing predictions or merges two candidates', each child scored on the same sample; the "
                "fitter survive, near-duplicates (by embedding) penalised",
        ),
        "icldsl.training.omega:Omega",
    ),
    "reflective": Function(
        Signature.declare(
            {"lm": Option(LM_NAME, doc="the lm that reflects and proposes instructions"),
             "proposals": Option(AtLeast(int, 1), 4, "attempts each epoch"),
             "minibatch_size": Option(AtLeast(int, 1), 8, "training examples a parent and its child run on"),
             "temperature": Option(AtLeast(float, 0), 0.7, "the decoding temperature of a proposal"),
             "sample_size": Option(AtLeast(int, 1), 50, "validation examples each candidate is scored on")},
            required=("lm",),
            doc="at the end of each epoch an LM reflects on a step's failures and the reward's feedback and "
                "proposes instructions; candidates best on at least one validation example stay on a Pareto front",
        ),
        "icldsl.training.reflective:Reflective",
    ),
}

# The settings of a train block written `key value` (`reward`, `optimizer` and `checkpoint`
# have their own syntax). `early_stopping` is written `early_stopping patience N`; `budget`
# `budget { calls: N, tokens: N }`, each limit at least 1. `TrainSpec` takes its defaults
# from here and refuses what the checker refuses.
BUDGET_KEYS = ("calls", "tokens")
MONITOR, MODE = "val_reward", "max"  # `checkpoint best MONITOR MODE` when a train block has none
TRAIN_SETTINGS = Signature.declare({
    "epochs": Option(AtLeast(int, 1), 1, "passes over the training set"),
    "batch_size": Option(AtLeast(int, 1), 32, "training examples between two proposals of the optimizer"),
    "runs": Option(AtLeast(int, 1), 1, "evaluations of the test set, each with its own seed"),
    "seed": Option(int, 0, "the seed of every random draw of the fit"),
    "validation_split": Option(Between(float, 0, 1), 0.2, "the share of the training data held out "
                                                                    "for validation"),
    "concurrency": Option(CONCURRENCY, 4, "rows in flight at once"),
    "early_stopping": Option(AtLeast(int, 1), doc="epochs without improvement before training stops (off by default)"),
    "budget": Option(dict[str, int], doc="the most LM calls and tokens the fit may spend (no limit by default)"),
})


def budget_problems(budget: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """What is wrong with a budget's limits: (limit, diagnostic code, message) for a limit that
    is not `calls` or `tokens`, or is below 1."""
    found = []
    for key, limit in budget.items():
        if key not in BUDGET_KEYS:
            found.append((key, "unknown-option", f"a budget has no `{key}`"))
        elif limit < 1:
            found.append((key, "invalid-value", f"the `{key}` budget must be at least 1"))
    return found


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
