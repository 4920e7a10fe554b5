"""What a dataset is and what is wrong with it: fingerprints, duplicated rows, leakage.

Two examples are the same input when their `x` is equal after folding case and runs of
white space in every string, so a copy with a stray space or capital still counts.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from icldsl.datasets.base import Dataset, Example

SHOWN = 3  # origins named in a warning; the rest are counted

_SPACE = re.compile(r"\s+")


def fingerprint(examples: Sequence[Example]) -> str:
    """sha256 of the examples' content (inputs and outputs, in order; not where they came from)."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(_canonical([ex.x, ex.y]).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class DataCheck:
    """A dataset's fingerprints and the problems found in it, by example origin.

    `duplicates`: groups of examples of one split with the same input.
    `leaks`: (test origin, training origin) for test inputs that also occur in training.
    """

    name: str
    sizes: dict[str, int]
    fingerprints: dict[str, str]
    duplicates: dict[str, tuple[tuple[str, ...], ...]]
    leaks: tuple[tuple[str, str], ...]

    def warnings(self) -> list[str]:
        """One sentence per problem, naming a few of the rows involved."""
        out = []
        if self.leaks:
            pairs = ", ".join(f"{test} = {train}" for test, train in self.leaks[:SHOWN])
            more = f" and {len(self.leaks) - SHOWN} more" if len(self.leaks) > SHOWN else ""
            out.append(
                f"data `{self.name}`: {len(self.leaks)} of {self.sizes['test']} test examples also occur among "
                f"the training examples, so the test score overstates the program ({pairs}{more})"
            )
        for part, groups in self.duplicates.items():
            if not groups:
                continue
            extra = sum(len(g) - 1 for g in groups)
            shown = "; ".join(" = ".join(g[:SHOWN]) + (" = ..." if len(g) > SHOWN else "") for g in groups[:SHOWN])
            more = f"; and {len(groups) - SHOWN} more" if len(groups) > SHOWN else ""
            out.append(f"data `{self.name}`: {extra} duplicated {part} row{'s' if extra != 1 else ''} "
                       f"(the same input): {shown}{more}")
        return out

    def to_json(self) -> dict[str, Any]:
        """For the artifact's `training.data`: fingerprints, problem counts and the warnings."""
        return {
            "fingerprint": dict(self.fingerprints),
            "rows": dict(self.sizes),
            "duplicates": {part: sum(len(g) - 1 for g in groups) for part, groups in self.duplicates.items()},
            "leaks": len(self.leaks),
            "warnings": self.warnings(),
        }


def inspect(dataset: Dataset) -> DataCheck:
    """Fingerprint each split and find duplicated inputs and test inputs seen in training."""
    parts = {"train": dataset.train, "test": dataset.test}
    duplicates = {}
    for part, examples in parts.items():
        groups: dict[str, list[str]] = defaultdict(list)
        for ex in examples:
            groups[input_key(ex.x)].append(ex.origin)
        duplicates[part] = tuple(tuple(g) for g in groups.values() if len(g) > 1)
    seen = {}
    for ex in dataset.train:
        seen.setdefault(input_key(ex.x), ex.origin)
    leaks = tuple((ex.origin, seen[k]) for ex in dataset.test if (k := input_key(ex.x)) in seen)
    return DataCheck(
        name=dataset.name,
        sizes={part: len(examples) for part, examples in parts.items()},
        fingerprints={part: fingerprint(examples) for part, examples in parts.items()},
        duplicates=duplicates,
        leaks=leaks,
    )


def input_key(value: Any) -> str:
    """What two inputs share when they count as the same (case and runs of white space folded)."""
    return _canonical(_fold(value))


def _fold(value: Any) -> Any:
    if isinstance(value, str):
        return _SPACE.sub(" ", value).strip().casefold()
    if isinstance(value, dict):
        return {k: _fold(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fold(v) for v in value]
    return value


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
