"""The retriever alone: what a step that retrieves examples would score without its LM.

For each step of the trained program that retrieves examples and whose answer has an
enum or bool field the test data holds, the fit scores two baselines on the same test
rows as the trained program, from the examples each row retrieved (recorded in its
trace, so they cost no LM call):

- `vote`: the label most of the k retrieved examples carry; a tie goes to the tied
  label whose example is nearest the input;
- `nearest1`: the label of the nearest example.

The entry names the step's k, its cascade share and vote weight when it has them (the rows
the vote answered score the same for the trained step and the vote). Beside them, the trained
step's accuracy on that field minus the vote's, paired over the rows (mean and standard
error of the per-row difference, as `trained - untrained`).
Rows where the step did not run (an earlier step failed, another branch arm ran) are
left out; a row whose retrieval failed counts as a miss of both baselines.
"""

from __future__ import annotations

import typing
from typing import Any, Sequence

from ..runtime.program import Program
from ..runtime.retrieval import cascade_json, vote
from .estimate import Estimate, paired
from .scored import Scored
from .training_record import Difference


def _field(program: Program, path: str, expected: Sequence[Scored]) -> str | None:
    """The step's first enum or bool field that the test rows' expected outputs hold."""
    step = next(s for s in program.spec.lm_steps() if s.path == path)
    model = program.models[step.answer_model]
    for name, info in model.model_fields.items():
        label = info.alias or name
        if (typing.get_origin(info.annotation) is typing.Literal or info.annotation is bool) and \
                expected and all(label in s.example.y for s in expected):
            return label
    return None


def _estimate(values: Sequence[float]) -> dict[str, float]:
    e = Estimate.of(values)
    return {"mean": e.mean, "se": e.stderr}


def baselines(program: Program, scored: Sequence[Scored]) -> list[dict[str, Any]]:
    """One entry per step of `program` that retrieves examples and answers a label the test
    rows hold, scored on `scored` (the trained program's test predictions); see the module."""
    found = []
    for path, state in program.states.items():
        retrieval = state.retrieval
        if retrieval is None:
            continue
        field = _field(program, path, scored)
        if field is None:
            continue
        outputs = {d.origin: d.output.get(field) for d in retrieval.pool.demos}
        trained, voted, first = [], [], []
        for s in scored:
            record = s.trace.steps.get(path)
            if record is None:
                continue
            labels = [outputs[o] for o in retrieval.nearest_first(record.retrieved) if o in outputs]
            truth = s.example.y[field]
            trained.append(float(record.output is not None and record.output.get(field) == truth))
            voted.append(float(bool(labels) and vote(labels) == truth))
            first.append(float(bool(labels) and labels[0] == truth))
        if not trained:
            continue
        diff = paired(trained, voted)
        cascade = {} if retrieval.cascade is None else {"cascade": cascade_json(retrieval.cascade)}
        weight = {} if retrieval.vote_weight is None else {"vote_weight": retrieval.vote_weight}
        found.append({"step": path, "field": field, "k": retrieval.k, **cascade, **weight, "vote": _estimate(voted),
                      "nearest1": _estimate(first),
                      "trained_minus_vote": Difference.of(diff).to_json()})
    return found
