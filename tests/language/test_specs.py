"""The one table of train settings agrees with the grammar that reads them and the spec that holds them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from icldsl.language.compiler import compile_file
from icldsl.language.catalogue.training import TRAIN_SETTINGS
from icldsl.language.specs import BranchSpec, TrainSpec

GRAMMAR = (Path(__file__).resolve().parents[2] / "grammar" / "icl.lark").read_text()


def test_every_setting_the_grammar_reads_is_in_the_table_and_the_spec() -> None:
    written = re.search(r"^value_setting: \((.*)\) value$", GRAMMAR, re.M).group(1).split(" | ")
    keywords = {re.search(rf'^{name}: "(\w+)"$', GRAMMAR, re.M).group(1) for name in written}
    assert keywords | {"early_stopping"} == set(TRAIN_SETTINGS.options)
    defaults = {f.name: f.default for f in dataclasses.fields(TrainSpec)}
    assert {key: defaults[key] for key in TRAIN_SETTINGS.options} == \
        {key: TRAIN_SETTINGS.defaults.get(key) for key in TRAIN_SETTINGS.options}


def test_a_branch_picks_its_arm_by_label_then_default() -> None:
    compiled = compile_file(Path(__file__).resolve().parents[2] / "programs" / "support.icl")
    spec, _ = compiled.programs["support"]
    branch = next(item for item in spec.steps if isinstance(item, BranchSpec))
    assert branch.arm("billing").label == "billing"
    assert branch.arm("nobody").label is None
    assert BranchSpec.label(True) == "true" and BranchSpec.label(3) == "3"
