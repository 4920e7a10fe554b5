"""Signatures of the functions a file may call (rewards, optimizers, loaders) and of
LM options, and how IR values are checked against them and turned into Python."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

from . import ir
from .source import Span


class Fields:
    """Option type: a list of field names of the program's output model."""

    def __repr__(self) -> str:
        return "fields"


FIELDS = Fields()


class LMName:
    """Option type: the bare name of an `lm` block in the same file, like `fallback: backup`."""

    def __repr__(self) -> str:
        return "lm name"


LM_NAME = LMName()


class EmbeddingName:
    """Option type: the bare name of an `embedding` block, like `embedding: minilm`."""

    def __repr__(self) -> str:
        return "embedding name"


EMBEDDING_NAME = EmbeddingName()


class Urls:
    """Option type: one URL, or a list of them (`base_url: ["http://a/v1", "http://b/v1"]`);
    each may be `env("...")`."""

    def __repr__(self) -> str:
        return "urls"


URLS = Urls()

# A query parameter of a URL whose name holds one of these (`?token=`, `?key=`, `api_key=`,
# `access_token=`, `sig=`) carries a secret, as the user name and password of `http://user:pw@host` do.
SECRET_QUERY = re.compile(r"key|token|secret|passw|auth|sig|credential", re.IGNORECASE)


def url_secrets(url: str) -> list[str]:
    """The secrets written in `url`: its user-info (`user:password`, and the password alone)
    and the values of its secret-named query parameters, each as written and decoded;
    [] for a URL without them or text that is no URL."""
    try:
        parts = urlsplit(url)
        if not (parts.scheme and parts.netloc):
            return []
        userinfo = parts.netloc.rpartition("@")[0]
        password = parts.password if userinfo else None
        query = parse_qsl(parts.query, keep_blank_values=False)
    except ValueError:
        return []
    raw = dict(pair.partition("=")[::2] for pair in parts.query.split("&"))
    found = [userinfo, password or "", *(v for k, v in query if SECRET_QUERY.search(k)),
             *(v for k, v in raw.items() if SECRET_QUERY.search(unquote(k)))]
    found += [unquote(s) for s in found]
    return [s for s in dict.fromkeys(found) if s]


@dataclass(frozen=True, slots=True)
class Choice:
    """Option type: one of a few fixed strings, like `sampling: "best"`."""

    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AtLeast:
    """Option type: an `int` or `float` of at least `low` (above it when `strict`)."""

    kind: type
    low: int | float
    strict: bool = False


@dataclass(frozen=True, slots=True)
class Within:
    """Option type: an `int` or `float` from `low` to `high`, both included."""

    kind: type
    low: int | float
    high: int | float


# The most calls one LM keeps in flight (its `max_concurrency`), and the most rows `icldsl run
# --concurrency`, `Program.map` or a train block's `concurrency` keep in flight: each is a
# connection (a file descriptor) and a task, and far more than any server answers at once.
MAX_CONCURRENCY = 1024
CONCURRENCY = Within(int, 1, MAX_CONCURRENCY)


@dataclass(frozen=True, slots=True)
class Either:
    """Option type: a value of any of `kinds`, like `retriever: "bm25"` or `retriever: minilm`."""

    kinds: tuple[Any, ...]

    def accepts(self, marker: Any) -> bool:
        return marker in self.kinds


def names_a(t: Any, marker: Any) -> bool:
    """Whether option type `t` takes the name of a block of `marker`'s kind (LM_NAME, EMBEDDING_NAME)."""
    return t is marker or (isinstance(t, Either) and t.accepts(marker))


@dataclass(frozen=True, slots=True)
class Option:
    """One option, declared once: its type (a range or a set of choices is part of the type:
    `Within`, `AtLeast`, `Choice`), its default (None: absent unless given) and one line of
    doc. `Signature.declare` turns a table of them into what the checker, the constructors
    (`Signature.resolve`), the language server's hover and the docs read."""

    type: Any
    default: Any = None
    doc: str = ""


@dataclass(frozen=True, slots=True)
class Signature:
    """What a callable accepts: option name -> type, which are required, positional order,
    and each option's default and doc (from its `Option`)."""

    options: Mapping[str, Any]
    required: tuple[str, ...] = ()
    positional: tuple[str, ...] = ()
    doc: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    docs: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def declare(cls, options: Mapping[str, Option], *, required: tuple[str, ...] = (),
                positional: tuple[str, ...] = (), doc: str = "") -> "Signature":
        """The signature of a table of declared options."""
        return cls({name: o.type for name, o in options.items()}, required, positional, doc,
                   {name: o.default for name, o in options.items() if o.default is not None},
                   {name: o.doc for name, o in options.items() if o.doc})

    def refusal(self, name: str, value: Any) -> str | None:
        """Why the Python `value` cannot be option `name`, in the words the checker uses for the
        same value written in a file; None when it fits. Constructors call this (through
        `resolve`) so that what `icldsl check` accepts is exactly what runs."""
        if name not in self.options:
            return f"unknown option `{name}`; expected one of {', '.join(sorted(self.options))}"
        written = _written(value)
        if written is None or not matches(written, self.options[name]):
            found = value_name(written) if written is not None else type(value).__name__
            return f"option `{name}`: expected {type_name(self.options[name])}, found {found}"
        return None

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Every declared option's value: `given` (None meaning not given) over the defaults.
        Raises ValueError with `refusal`'s message for a value the checker would refuse."""
        values = {**self.defaults, **{k: v for k, v in given.items() if v is not None}}
        for name, value in values.items():
            problem = self.refusal(name, value)
            if problem:
                raise ValueError(problem)
        return values


def _written(value: Any) -> ir.Value | None:
    """A Python value as the IR value that writes it in a file (None for what no file can write)."""
    span = Span("<option>", 0, 0, 1, 1)
    if isinstance(value, (str, int, float, bool)):
        return ir.Literal(value, span)
    if isinstance(value, (list, tuple)):
        items = [_written(v) for v in value]
        return None if None in items else ir.ListValue(tuple(items), span)
    if isinstance(value, Mapping):
        items = [(str(k), _written(v)) for k, v in value.items()]
        if any(v is None for _, v in items):
            return None
        return ir.MapValue(tuple(ir.Arg(k, v, span) for k, v in items), span)
    return None


@dataclass(frozen=True, slots=True)
class Function:
    """A reward or optimizer a file may call: its signature and its factory.

    The factory is a callable, or `"module:name"` imported when first made, so that the
    checker reads every signature without importing the implementations (and numpy, httpx
    with them). Its own parameters hold the options' defaults: `defaults` reads them there.
    With `resources`, the factory also receives `resources=` (the session's
    `training.resources.Resources`: its LMs, embeddings and the file's folder).
    """

    signature: Signature
    factory: Callable[..., Any] | str
    resources: bool = False

    @property
    def make(self) -> Callable[..., Any]:
        if not isinstance(self.factory, str):
            return self.factory
        module, _, name = self.factory.partition(":")
        return getattr(importlib.import_module(module), name)

    @property
    def defaults(self) -> dict[str, Any]:
        """The options' defaults, from the factory's parameters (imports it)."""
        parameters = inspect.signature(self.make).parameters.values()
        return {p.name: p.default for p in parameters
                if p.name in self.signature.options and p.default is not inspect.Parameter.empty}


def type_name(t: Any) -> str:
    if isinstance(t, Either):
        return " or ".join(type_name(k) for k in t.kinds)
    if isinstance(t, Choice):
        return "one of " + ", ".join(f'"{v}"' for v in t.values)
    if isinstance(t, AtLeast):
        return f"{type_name(t.kind)} {'above' if t.strict else 'of at least'} {t.low}"
    if isinstance(t, Within):
        return f"{type_name(t.kind)} from {t.low} to {t.high}"
    if t is FIELDS:
        return "a list of field names"
    if t is LM_NAME:
        return "the name of an lm, like `fallback: backup`"
    if t is URLS:
        return 'a URL or a non-empty list of them, like ["http://a:8000/v1", "http://b:8000/v1"]'
    if t is EMBEDDING_NAME:
        return "the name of an embedding, like `embedding: minilm`"
    if t == dict[str, int]:
        return "a mapping of names to whole numbers, like { calls: 500 }"
    if t == list[str]:
        return "a list of strings"
    if t == list[int]:
        return "a list of whole numbers, like [4, 8]"
    if t == dict[str, str]:
        return "a mapping of names to strings, like { a: \"x\" }"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(t, str(t))


def value_name(value: ir.Value) -> str:
    """What a value written in a file is, for "found ..." in a message."""
    if isinstance(value, ir.Literal):
        if isinstance(value.value, bool):
            return "true" if value.value else "false"
        if isinstance(value.value, str):
            shown = value.value if len(value.value) <= 30 else value.value[:27] + "..."
            return f"the string {json.dumps(shown, ensure_ascii=False)}"
        return f"the {'integer' if isinstance(value.value, int) else 'number'} {value.value}"
    if isinstance(value, ir.ListValue):
        return f"a list of {len(value.items)}" if value.items else "an empty list"
    if isinstance(value, ir.MapValue):
        return "a mapping"
    if isinstance(value, ir.EnvValue):
        return f'`env("{value.var}")`, a string'
    if isinstance(value, ir.Ref):
        return f"the name `{value.name}`"
    if isinstance(value, ir.Call):
        return f"a call of `{value.func}`"
    return type(value).__name__.lower()


def expected_found(value: ir.Value, expected: Any) -> str:
    """The help of a wrong-type error: `expected X, found Y`, and how to write a number that was
    quoted (`"75%"` -> `0.75`)."""
    help_ = f"expected {type_name(expected)}, found {value_name(value)}"
    if isinstance(value, ir.Literal) and isinstance(value.value, str) and any(
            matches(ir.Literal(number, value.span), expected) for number in (1, 1.0, 0.5)):
        text = value.value.strip()
        percent = text.endswith("%")
        try:
            number = float(text[:-1] if percent else text)
        except ValueError:
            return help_
        if percent:
            return f"{help_}; write a percentage as a fraction, without quotes: {number / 100:g}"
        return f"{help_}; write the number without quotes: {number:g}"
    return help_


def matches(value: ir.Value, t: Any) -> bool:
    """Whether an IR value fits option type `t` (env(...) stands for a string)."""
    if isinstance(t, Either):
        return any(matches(value, kind) for kind in t.kinds)
    if isinstance(t, Choice):
        return isinstance(value, ir.Literal) and value.value in t.values
    if isinstance(t, AtLeast):
        return matches(value, t.kind) and (value.value > t.low if t.strict else value.value >= t.low)
    if isinstance(t, Within):
        return matches(value, t.kind) and t.low <= value.value <= t.high
    if t == dict[str, str]:
        return isinstance(value, ir.MapValue) and all(
            isinstance(a.value, ir.Literal) and isinstance(a.value.value, str) for a in value.items
        )
    if t == dict[str, int]:
        return isinstance(value, ir.MapValue) and all(
            isinstance(a.value, ir.Literal) and type(a.value.value) is int for a in value.items
        )
    if t is URLS:
        return matches(value, str) or (isinstance(value, ir.ListValue) and bool(value.items)
                                       and all(matches(v, str) for v in value.items))
    if t is LM_NAME or t is EMBEDDING_NAME:
        return isinstance(value, ir.Ref) and len(value.path) == 1
    if t == list[int]:
        return isinstance(value, ir.ListValue) and bool(value.items) and all(
            isinstance(v, ir.Literal) and type(v.value) is int for v in value.items
        )
    if t is FIELDS or t == list[str]:
        return isinstance(value, ir.ListValue) and all(
            isinstance(v, ir.Literal) and isinstance(v.value, str) for v in value.items
        )
    if t is str:
        return isinstance(value, ir.EnvValue) or (isinstance(value, ir.Literal) and isinstance(value.value, str))
    if not isinstance(value, ir.Literal) or isinstance(value.value, str):
        return False
    if t is bool:
        return isinstance(value.value, bool)
    if isinstance(value.value, bool):
        return False
    return t is float or (t is int and isinstance(value.value, int))


def to_python(value: ir.Value, *, resolve_env: bool = True) -> Any:
    """The Python value of a checked IR value.

    `env("X")` becomes the variable's value, or `{"env": "X"}` when not resolved,
    which is how settings are stored without their secrets.
    """
    if isinstance(value, ir.Literal):
        return value.value
    if isinstance(value, ir.ListValue):
        return [to_python(v, resolve_env=resolve_env) for v in value.items]
    if isinstance(value, ir.MapValue):
        return {a.name: to_python(a.value, resolve_env=resolve_env) for a in value.items}
    if isinstance(value, ir.EnvValue):
        return os.environ.get(value.var) if resolve_env else {"env": value.var}
    if isinstance(value, ir.Ref):
        return str(value)
    raise TypeError(f"not a plain value: {type(value).__name__}")


def bind(signature: Signature, args: tuple[ir.Arg, ...]) -> dict[str, ir.Value]:
    """Map a call's arguments to option names (positional by `signature.positional`).

    Assumes the checker accepted the call; extra positional arguments are dropped.
    """
    bound: dict[str, ir.Value] = {}
    positional = iter(signature.positional)
    for arg in args:
        name = arg.name if arg.name is not None else next(positional, None)
        if name is not None:
            bound[name] = arg.value
    return bound
