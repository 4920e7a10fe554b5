"""`nearest_few_shot`: each step retrieves, at every call, the k pool examples nearest its input.

A step's pool is the training data with its expected outputs when the step reads the
program's input alone and the data holds its answer (as `labeled_few_shot` learns);
any other step's pool is its own inputs and outputs in the epoch's runs whose reward
reached `threshold` (as `bootstrap_few_shot` learns). Rows with the same input (case
and white space folded) enter once, the first kept. Validation rows never enter a pool.

At the end of each epoch one candidate per `k` (each step's k capped at its pool's
size), `labels` and `cascade` choice is scored against the current states on the same validation examples, and the
best replaces them only when it wins by more than the standard error of the paired
difference; every comparison is noted. See `runtime.retrieval` for how examples are
found and ordered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..datasets.base import Example
from ..datasets.quality import input_key
from ..runtime.demo import Demo
from ..runtime.program import Program
from ..language.catalogue.training import LEXICAL
from ..runtime.retrieval import BM25, Dense, Pool, Retrieval, cascade_json, cascade_share, query_text
from ..runtime.state import StepState
from .context import Context, Optimizer
from .optimizers import best_per_row, check_options, compare_candidates, declared, labeled_fields, step_demo
from .scored import Scored
from .resources import Resources

EMBED_BATCH = 64  # texts per request when a pool is embedded
_DEFAULT = declared("nearest_few_shot")


@dataclass(frozen=True, slots=True)
class NearestFewShot(Optimizer):
    """Retrieved few-shot examples: the k pool examples nearest each input (module docstring).

    `k` is one count or the candidates to choose from on validation; `retriever` is
    `"bm25"` or the name of an `embedding` block; `order` puts the nearest example last
    (next to the input) or first. `labels` is `"all"` (each enum field offers all its
    labels) or `"retrieved"` (only those of the call's retrieved examples), or a list of
    both to choose from on validation (every k with every choice); `cascade` lets the vote
    of a step's retrieved examples answer without an LM call when at least a share t of
    them carry it: false (never), true (t = 1, unanimity), a number t from 0 (every call)
    to 1, or a list of these to choose from on validation (`runtime.retrieval`).
    Candidates are scored with the lower share first, so a tie on validation goes to the
    one that calls less. `vote_weight` makes the LM score the outputs of the retrieved
    examples, each weighed by their vote, instead of generating: false (generate), true
    (weight 1), a weight w >= 0, or a list of these to choose from on validation.
    """

    k: tuple[int, ...] = _DEFAULT["k"]
    retriever: str = _DEFAULT["retriever"]
    order: str = _DEFAULT["order"]
    threshold: float = _DEFAULT["threshold"]
    compare_on: int = _DEFAULT["compare_on"]
    labels: tuple[str, ...] = _DEFAULT["labels"]
    cascade: tuple[float | None, ...] = _DEFAULT["cascade"]  # given as a bool, a share or a list of them
    vote_weight: tuple[float | None, ...] = _DEFAULT["vote_weight"]  # given as a bool, a weight or a list
    resources: Resources = field(default_factory=Resources, repr=False)

    def __post_init__(self) -> None:
        check_options(self, "nearest_few_shot")
        object.__setattr__(self, "k", _listed(self.k, int, lambda k: k))
        labels = (self.labels,) if isinstance(self.labels, str) else tuple(self.labels)
        object.__setattr__(self, "labels", tuple(dict.fromkeys(labels)))
        # the declaration has refused anything else; a tie on validation goes to the one listed first
        object.__setattr__(self, "cascade", _listed(self.cascade, cascade_share, lambda t: 2.0 if t is None else t))
        object.__setattr__(self, "vote_weight", _listed(self.vote_weight, _weight, lambda w: -1.0 if w is None else w))
        if self.retriever != LEXICAL and self.retriever not in self.resources.embeddings:
            raise ValueError(f"nearest_few_shot: retriever must be \"{LEXICAL}\" or the name of an embedding block, "
                             f"not {self.retriever!r}")

    def max_examples(self) -> int:
        """The most examples one call gets."""
        return max(self.k)

    def planned_calls(self, *, train: int, validation: int, epochs: int, batches: int, lm_steps: int) -> int:
        """At most: each epoch scores the current states and one candidate per k, labels, cascade
        and vote weight on the compared examples."""
        candidates = len(self.k) * len(self.labels) * len(self.cascade) * len(self.vote_weight)
        return epochs * (candidates + 1) * min(validation, self.compare_on) * lm_steps

    def needs_runs(self, program: Program, train: Sequence[Example]) -> bool:
        """Whether some step's pool comes from the program's runs (it cannot learn from the data alone)."""
        return any(not state.frozen and labeled_fields(program, train, path) is None
                   for path, state in program.states.items())

    async def propose(self, states: Mapping[str, StepState], scored: Sequence[Scored],
                      ctx: Context) -> dict[str, StepState]:
        if not ctx.end_of_epoch:
            return dict(states)
        pools: dict[str, Pool] = {}
        described: dict[str, dict[str, Any]] = {}
        for path, state in states.items():
            if state.frozen:
                continue
            demos, source = self._pool_demos(path, scored, ctx)
            unique = _unique(demos)
            described[path] = {"source": source, "size": len(unique), "duplicates": len(demos) - len(unique)}
            if unique:
                pools[path] = Pool(unique, await self._index(unique))
        event = {"optimizer": "nearest_few_shot", "retriever": self.retriever, "order": self.order,
                 **_option_event("cascade", self.cascade, cascade_json),
                 **_option_event("vote_weight", self.vote_weight, lambda w: False if w is None else w),
                 "pools": described}
        if not pools:
            ctx.note({**event, "kept": False, "reason": "every pool is empty: no training row has an answer for "
                                                        "a step, and no run reached the threshold"})
            return dict(states)
        candidates = [{**states, **{path: states[path].with_retrieval(Retrieval(pool, min(k, len(pool.demos)),
                                                                                 self.order, labels, cascade, weight))
                                    for path, pool in pools.items()}}
                      for k in self.k for labels in self.labels for cascade in self.cascade
                      for weight in self.vote_weight]
        return await compare_candidates(states, _distinct(candidates), ctx, event, compare_on=self.compare_on,
                                        empty="no candidate differs from the current states", describe=_describe)

    def _pool_demos(self, path: str, scored: Sequence[Scored], ctx: Context) -> tuple[list[Demo], str]:
        labeled = labeled_fields(ctx.program, ctx.train, path)
        if labeled is not None:
            names, _ = labeled
            return [Demo(dict(row.x), {f: row.y[f] for f in names}, 1.0, row.origin) for row in ctx.train], "data"
        runs = best_per_row((s for s in scored if s.reward >= self.threshold), lambda s: s.example.origin)
        return [d for run in runs if (d := step_demo(run, path)) is not None], "runs"

    async def _index(self, demos: Sequence[Demo]) -> BM25 | Dense:
        texts = [query_text(d.inputs) for d in demos]
        if self.retriever == LEXICAL:
            return BM25(texts)
        embedder = self.resources.embedder(self.retriever)
        vectors = []
        for start in range(0, len(texts), EMBED_BATCH):
            vectors += await embedder.embed(texts[start: start + EMBED_BATCH])
        return Dense(self.resources.embeddings[self.retriever], np.asarray(vectors, dtype=np.float32))


def _unique(demos: Sequence[Demo]) -> tuple[Demo, ...]:
    """The demos with distinct inputs (folded as the data checks fold them), first kept."""
    seen: set[str] = set()
    kept = []
    for demo in demos:
        key = input_key(dict(demo.inputs))
        if key not in seen:
            seen.add(key)
            kept.append(demo)
    return tuple(kept)


def _distinct(candidates: list[dict[str, StepState]]) -> list[dict[str, StepState]]:
    """Candidates whose retrievals differ (two k capped at a small pool's size are the same)."""
    keys, kept = set(), []
    for candidate in candidates:
        key = tuple(s.retrieval.key() if s.retrieval else None for _, s in sorted(candidate.items()))
        if key not in keys:
            keys.add(key)
            kept.append(candidate)
    return kept


def _describe(states: Mapping[str, StepState]) -> dict[str, Any]:
    retrievals = {path: s.retrieval for path, s in sorted(states.items()) if s.retrieval is not None}
    described: dict[str, Any] = {"k": {path: r.k for path, r in retrievals.items()}}
    if any(r.labels != "all" for r in retrievals.values()):
        described["labels"] = {path: r.labels for path, r in retrievals.items()}
    if any(r.cascade is not None for r in retrievals.values()):
        described["cascade"] = {path: cascade_json(r.cascade) for path, r in retrievals.items()}
    if any(r.vote_weight is not None for r in retrievals.values()):
        described["vote_weight"] = {path: r.vote_weight for path, r in retrievals.items()}
    return described


def _listed(value: Any, convert: Callable[[Any], Any], order: Callable[[Any], Any]) -> tuple:
    """An option given as one value or a list: its values converted, once each, sorted by `order`."""
    given = value if isinstance(value, (list, tuple)) else (value,)
    return tuple(sorted({convert(v) for v in given}, key=order))


def _weight(value: bool | float) -> float | None:
    """A `vote_weight` as given: false is none (the LM generates), true is 1."""
    return None if value is False else 1.0 if value is True else float(value)


def _option_event(name: str, values: tuple, write: Callable[[Any], Any]) -> dict[str, Any]:
    """A cascade or vote weight option in a comparison's note: absent when off, else as `write`
    writes each value (a list when several)."""
    if values == (None,):
        return {}
    written = [write(v) for v in values]
    return {name: written[0] if len(written) == 1 else written}
