"""The walking test: for every declared option of every LM provider, embedding provider and data
loader, values at and past its range's boundaries and of wrong types are written into a small
.icl file and checked, and given to what builds it (`make_client`, `make_embedder`, the loader's
option check); the checker refuses exactly what the constructor refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from icldsl.datasets import DataError
from icldsl.datasets.rows import check_options
from icldsl.language import checker
from icldsl.language.catalogue.lms import EMBEDDERS, PROVIDERS
from icldsl.language.catalogue.loaders import LOADERS
from icldsl.language.diagnostics import CheckError
from icldsl.language.options import (CHARACTER, LM_NAME, AtLeast, Choice, Signature, Urls, Within,
                                     kind_of, type_name)
from icldsl.language.parser import parse
from icldsl.language.source import Source
from icldsl.lm import LMConfigError, make_client, make_embedder

SERVER = "http://127.0.0.1:9/v1"  # never called: constructors only
# Codes of what the file says about a value's type or range; a secret written in a file is
# refused by the checker whatever its type, and the constructor cannot tell (it sees the value).
VALUE_CODES = {"wrong-type", "invalid-value", "unknown-option"}


def _numbers(t: Any) -> list[Any]:
    """Values at and just past the boundaries of a range, and inside it."""
    step = 1 if t.kind is int else 0.5
    values = [t.low - step, t.low, t.low + step]
    if isinstance(t, Within):
        values += [t.high - step, t.high, t.high + step]
    return values


def candidates(t: Any) -> list[Any]:
    """Values to try for an option of type `t`: at and past its boundaries, and of wrong types."""
    kind = kind_of(t)
    if isinstance(t, (AtLeast, Within)):
        values = _numbers(t)
    elif isinstance(t, Choice):
        values = [*t.values, "nope"]
    elif t is CHARACTER:
        values = [";", "", ";;"]
    elif isinstance(t, Urls):
        values = [SERVER, [SERVER, "http://127.0.0.1:10/v1"], "127.0.0.1:11434", "ftp://h/v1", "http://[::1",
                  [SERVER, SERVER + "/"], []]
    elif kind is int:
        values = [-1, 0, 1]
    elif kind is float:
        values = [0, 0.5, -0.5]
    elif kind is str:
        values = ["x"]
    elif kind is bool:
        values = [True, False]
    elif kind == dict[str, str]:
        values = [{"question": "q"}, {"question": 1}]
    else:
        raise AssertionError(f"no candidates for {type_name(t)}")
    wrong = ["7", 1.5, True, [1]] if kind is int else ["7", True, [1]] if kind is float else [7, True]
    return values + [w for w in wrong if w not in values or type(w) is not type(values[values.index(w)])]


def written(value: Any) -> str:
    """A Python value as a file writes it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k}: {written(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(written(v) for v in value) + "]"
    return json.dumps(value)


def refused_by_checker(text: str) -> bool:
    try:
        diagnostics = checker.check(parse(Source("walk.icl", text)))
    except CheckError as exc:
        diagnostics = exc.diagnostics
    return any(d.severity == "error" and d.code in VALUE_CODES for d in diagnostics)


PROGRAM = """model Q { question: str }
model A { answer: float }
program p { input q: Q  a = generate A from q using m  output a }
"""


def lm_file(provider: str, option: str, value: Any) -> str:
    target = "local:/models/m.gguf" if provider == "local" else f"{provider}/m"
    return PROGRAM + f'lm m = "{target}" {{ {option}: {written(value)} }}\n'


def embedding_file(provider: str, option: str, value: Any) -> str:
    return PROGRAM + f'lm m = "openai/m" {{ base_url: "{SERVER}" }}\n' + \
        f'embedding e = "{provider}/m" {{ {option}: {written(value)} }}\n'


def refused_by(build, *args: Any) -> bool:
    try:
        build(*args)
    except LMConfigError:
        return True
    return False


def _cases(signatures: dict[str, Signature], skip: tuple[str, ...] = ()) -> list[tuple[str, str, Any]]:
    return [(owner, option, value) for owner, signature in signatures.items()
            for option, t in signature.options.items() if option not in skip and t is not LM_NAME
            for value in candidates(t)]


LM_CASES = _cases({name: p.signature for name, p in PROVIDERS.items()})
EMBEDDING_CASES = _cases({name: e.signature for name, e in EMBEDDERS.items()})
LOADER_CASES = _cases({name: loader.signature for name, loader in LOADERS.items()})


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"")  # a file the local client finds; it loads only at the first call
    return path


@pytest.mark.parametrize("provider, option, value", LM_CASES, ids=[f"{p}-{o}-{v!r}" for p, o, v in LM_CASES])
def test_lm_options(provider: str, option: str, value: Any, model_file: Path) -> None:
    target = f"local:{model_file}" if provider == "local" else f"{provider}/m"
    given = {} if provider == "local" or option == "base_url" else {"base_url": SERVER}
    checked = refused_by_checker(lm_file(provider, option, value))
    built = refused_by(make_client, target, {**given, option: value})
    assert checked == built, f"{provider} {option}: {value!r} refused by the checker: {checked}, by the client: {built}"


@pytest.mark.parametrize("provider, option, value", EMBEDDING_CASES,
                         ids=[f"{p}-{o}-{v!r}" for p, o, v in EMBEDDING_CASES])
def test_embedding_options(provider: str, option: str, value: Any) -> None:
    given = {} if option == "base_url" else {"base_url": SERVER}
    checked = refused_by_checker(embedding_file(provider, option, value))
    built = refused_by(make_embedder, f"{provider}/m", {**given, option: value})
    assert checked == built, \
        f"{provider} {option}: {value!r} refused by the checker: {checked}, by the embedder: {built}"


@pytest.mark.parametrize("loader, option, value", LOADER_CASES, ids=[f"{n}-{o}-{v!r}" for n, o, v in LOADER_CASES])
def test_loader_options(loader: str, option: str, value: Any) -> None:
    signature = LOADERS[loader].signature
    given = {"path": "rows.csv"} if "path" in signature.required and option != "path" else {}
    call = ", ".join(f"{k}: {written(v)}" for k, v in {**given, option: value}.items())
    checked = refused_by_checker(PROGRAM.replace(" using m", "") + f"data d = {loader}({call})\n")
    try:
        check_options(loader, {**given, option: value}, signature)
        built = False
    except DataError:
        built = True
    assert checked == built, f"{loader} {option}: {value!r} refused by the checker: {checked}, by the loader: {built}"


def test_every_kind_of_refusal_is_walked() -> None:
    """The walk reaches both sides of every boundary: each ranged option has a value refused and
    one accepted (so a test that accepted or refused everything would fail here)."""
    for owner, option, _ in LM_CASES + LOADER_CASES:
        t = (PROVIDERS.get(owner) or LOADERS[owner]).signature.options[option]
        if isinstance(t, (AtLeast, Within)):
            values = _numbers(t)
            fits = [Signature({option: t}).refusal(option, v) is None for v in values]
            assert any(fits) and not all(fits), (owner, option)


def test_a_context_window_of_32_is_refused_by_both(model_file: Path) -> None:
    assert refused_by_checker(lm_file("local", "n_ctx", 32))
    with pytest.raises(LMConfigError, match="n_ctx"):
        make_client(f"local:{model_file}", {"n_ctx": 32})
    assert not refused_by_checker(lm_file("local", "n_ctx", 64))
    assert make_client(f"local:{model_file}", {"n_ctx": 64}).n_ctx == 64


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_the_walked_files_are_clean_without_the_option(provider: str) -> None:
    """So that what the checker refuses in a walked file is the option's value."""
    assert not refused_by_checker(lm_file(provider, "seed", 1))
    assert not refused_by_checker(PROGRAM.replace(" using m", "") + 'data d = jsonl("rows.jsonl")\n')
