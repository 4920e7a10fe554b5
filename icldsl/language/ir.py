"""The typed IR of a `.icl` file: frozen dataclasses with spans, and `dump`.

The parser builds it and nothing else; names are resolved and checked by the
checker. The IR never imports lark.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from abc import ABC, abstractmethod
from typing import Generic, Iterator, TypeVar, Union

from .source import Span
from .vocabulary import PRIMITIVE_TYPES

# ---- types --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NamedType:
    """A builtin (`str`, `int`, `float`, `bool`) or a model, by name, with its
    constraints (`str(max_length: 80)`)."""

    name: str
    constraints: tuple["Arg", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ListType:
    item: "TypeExpr"
    constraints: tuple["Arg", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class OptionalType:
    inner: "TypeExpr"
    span: Span


@dataclass(frozen=True, slots=True)
class EnumType:
    choices: tuple[str, ...]
    span: Span


TypeExpr = Union[NamedType, ListType, OptionalType, EnumType]

R = TypeVar("R")


class TypeVisitor(ABC, Generic[R]):
    """The one dispatch over the four forms of a type expression: a subclass says what
    each form gives (the compiler's JSON form, the formatter's text); `list_` and
    `optional` get the value of what they hold. Walks that only look for parts use
    `type_parts` instead."""

    def visit(self, t: TypeExpr) -> R:
        if isinstance(t, NamedType):
            return self.named(t)
        if isinstance(t, ListType):
            return self.list_(t, self.visit(t.item))
        if isinstance(t, OptionalType):
            return self.optional(t, self.visit(t.inner))
        return self.enum(t)

    @abstractmethod
    def named(self, t: NamedType) -> R: ...

    @abstractmethod
    def list_(self, t: ListType, item: R) -> R: ...

    @abstractmethod
    def optional(self, t: OptionalType, inner: R) -> R: ...

    @abstractmethod
    def enum(self, t: EnumType) -> R: ...


def type_parts(t: TypeExpr, *, through_lists: bool = True) -> Iterator[TypeExpr]:
    """`t` and the types inside it, outermost first (a list's item only `through_lists`)."""
    yield t
    if isinstance(t, OptionalType):
        yield from type_parts(t.inner, through_lists=through_lists)
    elif isinstance(t, ListType) and through_lists:
        yield from type_parts(t.item)


def named_types(t: TypeExpr, *, through_lists: bool = True) -> Iterator[NamedType]:
    """The builtins and models a type names."""
    return (p for p in type_parts(t, through_lists=through_lists) if isinstance(p, NamedType))


def model_names(t: TypeExpr) -> Iterator[str]:
    """The models a type holds, through lists and optionals."""
    return (p.name for p in named_types(t) if p.name not in PRIMITIVE_TYPES)


def constraint_kind(t: TypeExpr) -> str | None:
    """What a type's constraints are checked against (`list` or its name), when it has any."""
    if isinstance(t, (NamedType, ListType)) and t.constraints:
        return "list" if isinstance(t, ListType) else t.name
    return None


def required_part(t: TypeExpr) -> TypeExpr:
    """The type without its `?`."""
    return t.inner if isinstance(t, OptionalType) else t

# ---- values -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """A string, number or boolean written in the file."""

    value: str | int | float | bool
    span: Span


@dataclass(frozen=True, slots=True)
class ListValue:
    items: tuple["Value", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class MapValue:
    """`{ key: value, ... }`, for example a loader's column mapping."""

    items: tuple["Arg", ...]
    span: Span


@dataclass(frozen=True, slots=True)
class EnvValue:
    """`env("NAME")`: a setting read from the environment when it is used."""

    var: str
    span: Span


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference by name, possibly dotted (`route.label`)."""

    path: tuple[str, ...]
    span: Span

    @property
    def name(self) -> str:
        return self.path[0]

    def __str__(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True, slots=True)
class Arg:
    """An argument or option: `name: value`, or positional when `name` is None."""

    name: str | None
    value: "Value"
    span: Span


@dataclass(frozen=True, slots=True)
class Call:
    """`func(args...)`: a reward, an optimizer, a data loader."""

    func: str
    args: tuple[Arg, ...]
    span: Span


Value = Union[Literal, ListValue, MapValue, EnvValue, Ref, Call]

# ---- definitions --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    type: TypeExpr
    description: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    fields: tuple[Field, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class LM:
    """`lm name = "provider/model" { options }`."""

    name: str
    target: Literal
    options: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Embedding:
    """`embedding name = "provider/model" { options }`."""

    name: str
    target: Literal
    options: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Tool:
    """`tool name = python("module:function")`."""

    name: str
    impl: Call
    span: Span


@dataclass(frozen=True, slots=True)
class Import:
    """`import "other.icl"`: the models, LMs and tools of another file."""

    path: Literal
    span: Span


@dataclass(frozen=True, slots=True)
class Input:
    name: str
    model: Ref
    span: Span


@dataclass(frozen=True, slots=True)
class Step:
    """`name = [frozen] kind Model from a + b [using lm] [instructions "..."]
    [tools [t, ...]] [max_steps N]`. Arms of a branch are steps named `branch.label`."""

    name: str
    kind: str
    model: Ref
    sources: tuple[Ref, ...]
    lm: Ref | None
    instructions: Literal | None
    frozen: bool
    tools: tuple[Ref, ...]
    max_steps: Literal | None
    span: Span


@dataclass(frozen=True, slots=True)
class Arm:
    """`"label" => step`, or `_ => step` (the default, `label` None)."""

    label: str | None
    step: Step
    span: Span


@dataclass(frozen=True, slots=True)
class Branch:
    """`name = branch value { arms }`: only the arm matching the value runs."""

    name: str
    on: Ref
    arms: tuple[Arm, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Output:
    refs: tuple[Ref, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Program:
    name: str
    description: str | None
    inputs: tuple[Input, ...]
    steps: tuple[Step | Branch, ...]
    outputs: tuple[Output, ...]
    span: Span

    def lm_steps(self) -> tuple[Step, ...]:
        """Every LM step, branch arms included, in source order."""
        return tuple(s for item in self.steps for s in (
            tuple(a.step for a in item.arms) if isinstance(item, Branch) else (item,)))


@dataclass(frozen=True, slots=True)
class Data:
    name: str
    loader: Call
    span: Span


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """`checkpoint best <monitor> <mode>`."""

    monitor: Ref
    mode: Ref
    span: Span


@dataclass(frozen=True, slots=True)
class Setting:
    """One line of a train block: `key value`."""

    key: str
    value: Value | Checkpoint
    span: Span


@dataclass(frozen=True, slots=True)
class Train:
    program: Ref
    data: Ref
    settings: tuple[Setting, ...]
    span: Span


Item = Union[Import, Model, LM, Embedding, Tool, Program, Data, Train]


@dataclass(frozen=True, slots=True)
class Comment:
    """A `//` comment, kept so `icldsl fmt` can put it back."""

    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed file: its items in source order, and its comments."""

    file: str
    items: tuple[Item, ...]
    comments: tuple[Comment, ...] = ()

    def of(self, kind: type) -> tuple:
        return tuple(item for item in self.items if isinstance(item, kind))


_NODE_FIELDS: dict[type, tuple[str, ...]] = {}


def moved(node, chars: int, lines: int):
    """A copy of an IR node (or a tuple of them) with every span moved `chars` characters and
    `lines` lines further into the file, columns unchanged: the language server parses a changed
    top-level item alone and moves the items that only shifted."""
    kind = type(node)
    if kind is Span:
        return Span(node.file, node.start + chars, node.end + chars, node.line + lines, node.column)
    if kind is tuple:
        return tuple([moved(item, chars, lines) for item in node])
    names = _NODE_FIELDS.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(node):
            return node  # a plain value: text, number, bool, None
        names = _NODE_FIELDS.setdefault(kind, tuple(f.name for f in dataclasses.fields(node)))
    return kind(*[moved(getattr(node, name), chars, lines) for name in names])


def dump(node: object, indent: int = 0) -> str:
    """A stable, readable text form of an IR tree, for golden files.

    A node whose fields are all plain values fits on one line.
    """
    pad = "  " * indent
    if not dataclasses.is_dataclass(node):
        return f"{pad}{node!r}"
    span = getattr(node, "span", None)
    head = f"{pad}{type(node).__name__}{'' if span is None else ' ' + repr(span)}"
    fields = [(f.name, getattr(node, f.name)) for f in dataclasses.fields(node) if f.name != "span"]

    def nested(value: object) -> bool:
        return dataclasses.is_dataclass(value) or (
            isinstance(value, tuple) and any(dataclasses.is_dataclass(v) for v in value)
        )

    if not any(nested(v) for _, v in fields):
        return head + "".join(f" {k}={v!r}" for k, v in fields)
    lines = [head]
    for name, value in fields:
        if isinstance(value, tuple) and nested(value):
            lines.append(f"{pad}  {name}:")
            lines.extend(dump(v, indent + 2) for v in value)
        elif nested(value):
            lines.append(f"{pad}  {name}:")
            lines.append(dump(value, indent + 2))
        else:
            lines.append(f"{pad}  {name}: {value!r}")
    return "\n".join(lines)
