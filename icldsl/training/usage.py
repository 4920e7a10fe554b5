"""Usage accounting: the LM calls a set of runs made and what they cost, per step and per LM."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar, Iterable, Mapping, Sequence

import numpy as np

from ..lm.trace import CallCost
from ..runtime.state import StepRecord
from .scored import Scored


@dataclass(frozen=True, slots=True)
class CallStats:
    """LM calls made by a set of runs, and what they cost.

    `calls` counts requests whether the cache answered them or not, and tokens are
    what the requests cost when they were made, so a re-run from the cache counts the
    same; `failures` counts step runs that called an LM and produced no output;
    `cache_hits` and `missing` (requests refused offline) depend on the cache, and
    `latencies` (seconds of the requests that reached an LM) on the clock. `cascaded`
    counts step runs answered by the vote of their retrieved examples (cascade), without a call.
    """

    calls: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    missing: int = 0
    latencies: tuple[float, ...] = ()
    cascaded: int = 0

    COUNTED: ClassVar[tuple[str, ...]] = ("calls", "failures", "prompt_tokens", "completion_tokens")  # in to_json

    def __add__(self, other: "CallStats") -> "CallStats":
        return CallStats(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @classmethod
    def of_record(cls, record: StepRecord) -> "CallStats":
        return cls(record.calls, int(record.calls > 0 and record.output is None), record.usage.prompt_tokens,
                   record.usage.completion_tokens, record.cache_hits, record.missing, record.latencies,
                   int(record.cascaded))

    @classmethod
    def of_cost(cls, cost: CallCost) -> "CallStats":
        """One call (its failure, if any, is its step's to count)."""
        return cls(1, 0, cost.usage.prompt_tokens, cost.usage.completion_tokens, int(cost.cached), int(cost.missing),
                   () if cost.latency is None else (cost.latency,))

    @classmethod
    def of(cls, scored: Sequence[Scored]) -> "CallStats":
        return UsageTable.of(scored).total

    @property
    def sent(self) -> int:
        """Requests that reached an LM."""
        return self.calls - self.cache_hits - self.missing

    def latency(self, percentile: float | None = None) -> float | None:
        """Mean seconds per request sent (or the given percentile); None when none was."""
        if not self.latencies:
            return None
        values = np.asarray(self.latencies)
        return float(values.mean() if percentile is None else np.percentile(values, percentile))

    def to_json(self) -> dict[str, int]:
        """The counts a re-run from the cache repeats exactly (for the artifact); `cascaded`
        only when some step run was answered without a call."""
        doc = {"calls": self.calls, "failures": self.failures, "prompt_tokens": self.prompt_tokens,
               "completion_tokens": self.completion_tokens}
        if self.cascaded:
            doc["cascaded"] = self.cascaded
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, int]) -> "CallStats":
        """The counts `to_json` wrote (cache hits, misses and latencies are not kept)."""
        return cls(*(doc[key] for key in cls.COUNTED), cascaded=doc.get("cascaded", 0))


@dataclass(frozen=True, slots=True)
class UsageTable:
    """LM usage per step path and per LM name."""

    steps: Mapping[str, CallStats] = field(default_factory=dict)
    lms: Mapping[str, CallStats] = field(default_factory=dict)

    @classmethod
    def of(cls, scored: Sequence[Scored]) -> "UsageTable":
        """Usage of the step runs that called an LM or were answered by retrieval, by step path and by LM."""
        return cls.of_records((path, r) for s in scored for path, r in s.trace.steps.items()
                              if r.calls or r.cascaded)

    @classmethod
    def of_records(cls, records: Iterable[tuple[str, StepRecord]]) -> "UsageTable":
        """Usage of (key, record) pairs, by key and by LM: each call under the LM that answered
        it (a fallback's answers under the fallback), a failed step under the LM it asked."""
        steps: dict[str, CallStats] = {}
        lms: dict[str, CallStats] = {}
        for key, record in records:
            stats = CallStats.of_record(record)
            steps[key] = steps.get(key, CallStats()) + stats
            if stats.failures:  # under the LM asked: its fallbacks may have failed too
                asked = record.lm or "?"
                lms[asked] = lms.get(asked, CallStats()) + CallStats(failures=stats.failures)
            for cost in record.lm_calls:
                lms[cost.lm] = lms.get(cost.lm, CallStats()) + CallStats.of_cost(cost)
        return cls(steps, lms)

    def __add__(self, other: "UsageTable") -> "UsageTable":
        def merge(a: Mapping[str, CallStats], b: Mapping[str, CallStats]) -> dict[str, CallStats]:
            return {k: a.get(k, CallStats()) + b.get(k, CallStats()) for k in sorted({*a, *b})}
        return UsageTable(merge(self.steps, other.steps), merge(self.lms, other.lms))

    @property
    def total(self) -> CallStats:
        return sum(self.steps.values(), CallStats())

    def to_json(self) -> dict[str, dict[str, dict[str, int]]]:
        """Counts per step and per LM that a re-run from the cache repeats exactly."""
        return {"steps": {k: v.to_json() for k, v in sorted(self.steps.items())},
                "lms": {k: v.to_json() for k, v in sorted(self.lms.items())}}

    @classmethod
    def from_json(cls, doc: Mapping[str, Mapping[str, Mapping[str, int]]]) -> "UsageTable":
        return cls({k: CallStats.from_json(v) for k, v in doc["steps"].items()},
                   {k: CallStats.from_json(v) for k, v in doc["lms"].items()})
