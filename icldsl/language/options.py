"""Signatures of the functions a file may call (rewards, optimizers, loaders) and of
LM options, and how IR values are checked against them and turned into Python."""

from __future__ import annotations

import importlib
import json
import os
import re
from dataclasses import dataclass, field
from types import MappingProxyType
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


@dataclass(frozen=True, slots=True)
class Urls:
    """Option type: one http(s) URL, or a list of distinct ones (`base_url: ["http://a/v1",
    "http://b/v1"]`); each may be `env("...")`. With `bare_hosts`, a `host:port` without a
    scheme is an http URL (as Ollama's OLLAMA_HOST writes it)."""

    bare_hosts: bool = False

    def __repr__(self) -> str:
        return "urls"

    def accepts(self, url: str) -> bool:
        """Whether `url` is an http(s) URL with a host, as a client sends requests to it."""
        if self.bare_hosts and "://" not in url:
            url = f"http://{url}"
        try:
            parts = urlsplit(url.rstrip("/"))
        except ValueError:  # an unclosed [ of an IPv6 address
            return False
        return parts.scheme in ("http", "https") and bool(parts.hostname)


URLS = Urls()
HOST_URLS = Urls(bare_hosts=True)

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
    """Option type: an `int` or `float` from `low` to `high`, both included (`low` excluded
    when `strict`, as in AtLeast: a `split` is above 0 and at most 1)."""

    kind: type
    low: int | float
    high: int | float
    strict: bool = False


class Character:
    """Option type: a string of one character, like `delimiter: ";"` (or `env(...)`)."""

    def __repr__(self) -> str:
        return "character"


CHARACTER = Character()


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


@dataclass(frozen=True, slots=True)
class Between:
    """Option type: an `int` or `float` above `low` and below `high`, like `validation_split 0.2`."""

    kind: type
    low: int | float
    high: int | float


@dataclass(frozen=True, slots=True)
class ListOf:
    """Option type: a non-empty list whose every item is of type `item`, like `k: [4, 8]`."""

    item: Any


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
        """The signature of a table of declared options (read-only)."""
        return cls(MappingProxyType({name: o.type for name, o in options.items()}), required, positional, doc,
                   MappingProxyType({name: o.default for name, o in options.items() if o.default is not None}),
                   MappingProxyType({name: o.doc for name, o in options.items() if o.doc}))

    def refusal(self, name: str, value: Any) -> str | None:
        """Why the Python `value` cannot be option `name`, in the words the checker uses for the
        same value written in a file; None when it fits. Constructors call this (through
        `resolve`) so that what `icldsl check` accepts is exactly what runs."""
        if name not in self.options:
            return f"unknown option `{name}`; expected one of {', '.join(sorted(self.options))}"
        t = self.options[name]
        if isinstance(value, str) and (names_a(t, LM_NAME) or names_a(t, EMBEDDING_NAME)):
            return None  # a block's name: whether one of that name exists is the caller's to say
        written = _written(value)
        if written is None or not matches(written, t):
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

    def check(self, what: str, values: Mapping[str, Any]) -> None:
        """Raise ValueError `what: <refusal>` for the first of `values` (None: not given) that
        the checker would refuse; a constructor calls it with the options it received. An
        option that names an lm or an embedding is skipped: the constructor gets the object."""
        for name, value in values.items():
            named = self.options.get(name) in (LM_NAME, EMBEDDING_NAME)
            problem = None if value is None or named else self.refusal(name, value)
            if problem:
                raise ValueError(f"{what}: {problem}")


def fits(value: Any, t: Any, *, env: bool = False) -> bool:
    """Whether the Python (or JSON) `value` fits option type `t`, as the same value written in a
    file `matches` it; with `env`, `{"env": NAME}` stands for `env("NAME")`, as a spec stores it."""
    written = _written(value, env=env)
    return written is not None and matches(written, t)


def _written(value: Any, *, env: bool = False) -> ir.Value | None:
    """A Python value as the IR value that writes it in a file (None for what no file can write);
    with `env`, `{"env": NAME}` is `env("NAME")`."""
    span = Span("<option>", 0, 0, 1, 1)
    if isinstance(value, (str, int, float, bool)):
        return ir.Literal(value, span)
    if isinstance(value, (list, tuple)):
        items = [_written(v, env=env) for v in value]
        return None if None in items else ir.ListValue(tuple(items), span)
    if env and isinstance(value, Mapping) and set(value) == {"env"} and isinstance(value["env"], str):
        return ir.EnvValue(value["env"], span)
    if isinstance(value, Mapping):
        items = [(str(k), _written(v, env=env)) for k, v in value.items()]
        if any(v is None for _, v in items):
            return None
        return ir.MapValue(tuple(ir.Arg(k, v, span) for k, v in items), span)
    return None


@dataclass(frozen=True, slots=True)
class Function:
    """A reward or optimizer a file may call: its signature and its factory.

    The factory is a callable, or `"module:name"` imported when first made, so that the
    checker reads every signature without importing the implementations (and numpy, httpx
    with them). The options' defaults are the signature's (`Signature.declare`); the
    factory takes them from there. With `resources`, the factory also receives `resources=`
    (the session's `training.resources.Resources`: its LMs, embeddings and the file's folder).
    """

    signature: Signature
    factory: Callable[..., Any] | str
    resources: bool = False
    # Options of the right types that cannot work together: (option, message) pairs for the
    # values of every option (given or default); the checker and the factory both ask it.
    problems: Callable[[Mapping[str, Any]], list[tuple[str, str]]] = lambda values: []

    @property
    def make(self) -> Callable[..., Any]:
        return implementation(self.factory) if isinstance(self.factory, str) else self.factory


def kind_of(t: Any) -> Any:
    """The type of the values option type `t` takes, without its range: `Within(int, 1, 8)` ->
    `int`, `CHARACTER` -> `str`; any other type is its own kind."""
    if isinstance(t, (AtLeast, Between, Within)):
        return t.kind
    return str if t is CHARACTER else t


def implementation(reference: str) -> Any:
    """What `"module:name"` names (`name` may be dotted: `"icldsl.datasets.files:CSV.load"`),
    imported now: catalogues name their implementations so, and import them only when built."""
    module, _, path = reference.partition(":")
    found: Any = importlib.import_module(module)
    for part in path.split("."):
        found = getattr(found, part)
    return found


def type_name(t: Any) -> str:
    if isinstance(t, Between):
        return f"{type_name(t.kind)} between {t.low} and {t.high} (exclusive)"
    if isinstance(t, ListOf):
        return f"a non-empty list, each {type_name(t.item)}"
    if isinstance(t, Either):
        return " or ".join(type_name(k) for k in t.kinds)
    if isinstance(t, Choice):
        return "one of " + ", ".join(f'"{v}"' for v in t.values)
    if isinstance(t, AtLeast):
        return f"{type_name(t.kind)} {'above' if t.strict else 'of at least'} {t.low}"
    if isinstance(t, Within):
        if t.strict:
            return f"{type_name(t.kind)} above {t.low} and at most {t.high}"
        return f"{type_name(t.kind)} from {t.low} to {t.high}"
    if t is CHARACTER:
        return 'a single character, like ";"'
    if t is FIELDS:
        return "a list of field names"
    if t is LM_NAME:
        return "the name of an lm, like `fallback: backup`"
    if isinstance(t, Urls):
        return ('a URL or a non-empty list of them (http or https, each once), like ["http://a:8000/v1", '
                '"http://b:8000/v1"]')
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
    if isinstance(t, Between):
        return matches(value, t.kind) and t.low < value.value < t.high
    if isinstance(t, ListOf):
        return isinstance(value, ir.ListValue) and bool(value.items) and all(matches(v, t.item) for v in value.items)
    if isinstance(t, Either):
        return any(matches(value, kind) for kind in t.kinds)
    if isinstance(t, Choice):
        return isinstance(value, ir.Literal) and value.value in t.values
    if isinstance(t, AtLeast):
        return matches(value, t.kind) and (value.value > t.low if t.strict else value.value >= t.low)
    if isinstance(t, Within):
        return matches(value, t.kind) and (t.low < value.value if t.strict else t.low <= value.value) \
            and value.value <= t.high
    if t is CHARACTER:
        return isinstance(value, ir.EnvValue) or (matches(value, str) and len(value.value) == 1)
    if t == dict[str, str]:
        return isinstance(value, ir.MapValue) and all(
            isinstance(a.value, ir.Literal) and isinstance(a.value.value, str) for a in value.items
        )
    if t == dict[str, int]:
        return isinstance(value, ir.MapValue) and all(
            isinstance(a.value, ir.Literal) and type(a.value.value) is int for a in value.items
        )
    if isinstance(t, Urls):
        items = value.items if isinstance(value, ir.ListValue) else (value,)
        urls = [v.value.rstrip("/") for v in items if isinstance(v, ir.Literal) and isinstance(v.value, str)]
        return bool(items) and all(matches(v, str) for v in items) and all(t.accepts(u) for u in urls) \
            and len(set(urls)) == len(urls)
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
