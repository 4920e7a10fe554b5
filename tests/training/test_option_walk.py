"""Every declared option of every reward, optimizer and train setting, walked: values at and
past the ends of its range and of the wrong type are written in a small .icl file for the
checker and given to the factory (or `TrainSpec`); the checker refuses exactly what the
factory refuses, since both read the option's one declaration."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from icldsl.language.catalogue.training import OPTIMIZERS, REWARDS, TRAIN_SETTINGS
from icldsl.language.compiler import compile_source
from icldsl.language.diagnostics import CheckError
from icldsl.language.options import EMBEDDING_NAME, FIELDS, LM_NAME, AtLeast, Between, Choice, Either, ListOf, Within
from icldsl.language.source import Source
from icldsl.language.specs import TrainSpec
from icldsl.training.resources import Resources

FILE = """
model Q {{ question: str }}
model A {{ answer: float }}
lm solver = "local/smollm2-135m"
embedding minilm = "local/all-minilm-l6-v2"
program p {{ input q: Q  a = generate A from q  output a }}
data d = gsm8k()
train p on d {{
    reward {reward}
    optimizer {optimizer}
    {setting}
}}
"""
# What a required option naming a block is, in the file and for the factory (which gets the object).
NAMED = {LM_NAME: ("solver", SimpleNamespace(name="solver")),
         EMBEDDING_NAME: ("minilm", SimpleNamespace(name="minilm"))}


def samples(t: Any) -> list[Any]:
    """Values at and past the ends of type `t`'s range, and of other types."""
    if isinstance(t, Either):
        return [v for kind in t.kinds if kind not in (LM_NAME, EMBEDDING_NAME) for v in samples(kind)]
    if isinstance(t, Choice):
        return [*t.values, "nope", 1]
    if isinstance(t, ListOf):
        items = samples(t.item)
        return [[v] for v in items] + [items[:2], items[-2:], []]
    if isinstance(t, AtLeast):
        low = t.low
        return [low, low - 1, low + 1, low + 0.5, "3", True] if t.kind is int else \
            [low, low - 0.5, low + 0.25, int(low) + 1, "0.5", True]
    if isinstance(t, (Within, Between)):
        return [t.low, t.high, t.low - 1, t.high + 1, (t.low + t.high) / 2 if t.kind is float else t.low + 1,
                "1", False]
    if t is int:
        return [0, -3, 2.5, "1", True]
    if t is float:
        return [0.5, -1, 2, "0.5", False]
    if t is bool:
        return [True, False, 1, "true"]
    if t is str:
        return ["some text", 3, True]
    if t == dict[str, int]:
        return [{"calls": 1}, {"calls": 0}, {"tokens": 5, "calls": 2}, {"dollars": 5}, {"calls": 1.5}, 3]
    raise AssertionError(f"no samples for {t!r}: add them")


def written(value: Any) -> str:
    """A Python value as a file writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(map(written, value)) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k}: {written(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def checker_refuses(reward: str, optimizer: str, setting: str = "") -> bool:
    try:
        compile_source(Source("walk.icl", FILE.format(reward=reward, optimizer=optimizer, setting=setting)))
    except CheckError:
        return True
    return False


def factory_refuses(make: Any, **kwargs: Any) -> bool:
    try:
        make(**kwargs)
    except ValueError:
        return True
    return False


def walked(table: dict) -> list[tuple[str, str, Any]]:
    """(function, option, value) for every option whose value the factory receives as written
    (names of blocks and output fields are checked against the file, not by the factory; so is
    the `python` reward's module reference, by finding it)."""
    return [(name, option, value) for name, function in table.items()
            for option, t in function.signature.options.items()
            if t not in (LM_NAME, EMBEDDING_NAME, FIELDS) and (name, option) != ("python", "function")
            for value in samples(t)]


def call(name: str, function: Any, option: str, value: Any) -> tuple[str, dict]:
    """The call as a file writes it, and the factory's arguments, with its required names filled."""
    required = {o: NAMED[function.signature.options[o]] for o in function.signature.required if o != option}
    text = f"{name}(" + ", ".join([*(f"{o}: {n[0]}" for o, n in required.items()),
                                   f"{option}: {written(value)}"]) + ")"
    kwargs = {**{o: n[1] for o, n in required.items()}, option: value}
    return text, {**kwargs, "resources": Resources()} if function.resources else kwargs


def mismatches(cases: list[tuple[str, str, Any]], table: dict, kind: str) -> tuple[list[str], int]:
    """Where the checker and the factory disagree, and how many values both refused."""
    found, refused = [], 0
    for name, option, value in cases:
        function = table[name]
        text, kwargs = call(name, function, option, value)
        file = {"reward": "exact_match()", "optimizer": "random_few_shot()", kind: text}
        checker, factory = checker_refuses(file["reward"], file["optimizer"]), factory_refuses(function.make, **kwargs)
        refused += checker and factory
        if checker != factory:
            found.append(f"{text}: checker {'refuses' if checker else 'accepts'}, "
                         f"factory {'refuses' if factory else 'accepts'}")
    return found, refused


@pytest.mark.parametrize("kind, table, least", [("reward", REWARDS, 15), ("optimizer", OPTIMIZERS, 150)])
def test_the_checker_refuses_exactly_what_the_factory_refuses(kind: str, table: dict, least: int) -> None:
    cases = walked(table)
    found, refused = mismatches(cases, table, kind)
    assert found == []
    assert len(cases) >= least and 0 < refused < len(cases)  # the walk meets both answers


def test_compare_on_29_is_refused_by_both_and_30_accepted_by_both() -> None:
    for name in ("bootstrap_few_shot", "labeled_few_shot", "nearest_few_shot"):
        function = OPTIMIZERS[name]
        assert checker_refuses("exact_match()", f"{name}(compare_on: 29)")
        assert factory_refuses(function.make, **call(name, function, "compare_on", 29)[1])
        assert not checker_refuses("exact_match()", f"{name}(compare_on: 30)")
        assert not factory_refuses(function.make, **call(name, function, "compare_on", 30)[1])


def test_train_settings_are_refused_by_the_checker_exactly_when_train_spec_refuses_them() -> None:
    found, refused = [], 0
    for key, t in TRAIN_SETTINGS.options.items():
        for value in samples(t):
            line = f"early_stopping patience {written(value)}" if key == "early_stopping" else \
                f"{key} {written(value)}"
            checker = checker_refuses("exact_match()", "random_few_shot()", line)
            factory = factory_refuses(TrainSpec, program="p", data="d", reward=("exact_match", {}), optimizers=(),
                                      **{key: value})
            refused += checker
            if checker != factory:
                found.append(f"{line}: checker {'refuses' if checker else 'accepts'}, "
                             f"TrainSpec {'refuses' if factory else 'accepts'}")
    assert found == [] and refused > 20


DOCS = (Path(__file__).resolve().parents[2] / "docs" / "language" / "train.md").read_text(encoding="utf-8")


def test_the_docs_show_the_declared_defaults() -> None:
    """docs/language/train.md writes each train setting's default and each optimizer's call
    with its defaults: they are the declared ones."""
    settings = dict(re.findall(r"^\| `(\w+) [A-Z]\w*` \| .* \| ([^|]+) \|$", DOCS, re.M))
    shown = {key: settings[key].strip() for key in TRAIN_SETTINGS.defaults}
    assert shown == {key: written(value) for key, value in TRAIN_SETTINGS.defaults.items()}
    calls = dict(re.findall(r"^\| `(\w+)\(([^`]*)\)` \|", DOCS, re.M))
    assert set(OPTIMIZERS) <= set(calls)
    compared = 0
    for name, args in calls.items():
        if name in OPTIMIZERS:
            defaults = OPTIMIZERS[name].signature.defaults
            for option, value in re.findall(r"(\w+): ([^,]+(?:, \d+\])?)", args):
                if option in defaults:
                    compared += 1
                    assert value == written(list(defaults[option]) if isinstance(defaults[option], tuple)
                                            else defaults[option]), (name, option)
    assert compared > 20
