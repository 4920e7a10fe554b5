"""Parse `.icl` text into the IR. No lark Tree or Token leaves this module."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import itertools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import lark
from lark import Token, Transformer
from lark.grammar import Rule
from lark.lexer import TerminalDef
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from . import ir
from .diagnostics import CheckError, Diagnostic, Fix, did_you_mean
from ..paths import cache_root, private_folder, read_private, write_atomic
from .source import Source

_HERE = Path(__file__).resolve().parent.parent  # the icldsl package
# The wheel carries the grammar inside the package; a source checkout has it at the top.
GRAMMAR_PATHS = (_HERE / "grammar" / "icl.lark", _HERE.parent / "grammar" / "icl.lark")

_TOKEN_WORDS = {"NAME": "a name", "STRING": "a string", "NUMBER": "a number", "$END": "the end of the file"}


@functools.cache
def _grammar() -> str:
    for path in GRAMMAR_PATHS:
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise FileNotFoundError(f"grammar icl.lark not found in {[str(p) for p in GRAMMAR_PATHS]}")


_OPTIONS = {"parser": "lalr", "propagate_positions": True}
CACHE_NAME = "parser.json"  # in `paths.cache_root()`
CACHE_LIMIT = 4 * 2**20  # bytes; the tables take ~150 KB
# Options a file of tables could name that hold code (hooks, classes): always set here, never read.
_SAFE_LOAD = {"postlex": None, "transformer": None, "lexer_callbacks": {}, "tree_class": None, "_plugins": {},
              "regex": False, "use_bytes": False, "g_regex_flags": 0, "debug": False, "propagate_positions": True}
# What a damaged or forged file of tables makes JSON or lark's deserialisation raise.
_DAMAGED = (ValueError, KeyError, TypeError, AttributeError, IndexError, AssertionError, RecursionError,
            re.error, lark.exceptions.LarkError)


@functools.cache
def _lark() -> lark.Lark:
    """The parser, its tables read from the user's cache when they were built for this grammar,
    lark and Python (building them is a third of `icldsl check`); else built and cached.

    The tables are kept as JSON (lark's own serialisation, which builds only lark's grammar and
    lexer classes), never as a pickle: reading the cache runs no code whoever wrote it, and it is
    read only from a folder and file that are the user's own (`paths.read_private`)."""
    grammar = _grammar()
    key = hashlib.sha256(f"{grammar}{_OPTIONS}{lark.__version__}{sys.version_info[:2]}".encode()).hexdigest()
    folder = cache_root()
    cached = _cached(read_private(folder, CACHE_NAME, CACHE_LIMIT), key)
    if cached is not None:
        return cached
    parser = lark.Lark(grammar, **_OPTIONS)
    data, memo = parser.memo_serialize([TerminalDef, Rule])
    with contextlib.suppress(OSError):  # a cache that cannot be written costs the next run the build again
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if private_folder(folder):  # nothing is left where others could change it
            write_atomic(folder / CACHE_NAME, json.dumps({"key": key, "data": data, "memo": memo}))
    return parser


def _cached(content: bytes | None, key: str) -> lark.Lark | None:
    """The parser whose tables `content` holds under `key`; None when there is no content, or it
    was written for another grammar or version, or is damaged."""
    if content is None:
        return None
    try:
        tables = json.loads(content, object_pairs_hook=_int_keys)
        if not isinstance(tables, dict) or tables.get("key") != key:
            return None
        loaded = lark.Lark._load_from_dict(tables["data"], tables["memo"], **_SAFE_LOAD)
        for terminal in loaded.terminals:  # the lexer compiles some only when it first meets them
            re.compile(terminal.pattern.to_regexp())
        return loaded
    except _DAMAGED:  # build the parser instead
        return None


def _int_keys(pairs: list[tuple[str, object]]) -> dict:
    """JSON objects with their integer keys back (lark's tables key states and memos by number)."""
    return {int(k) if k.isascii() and k.isdigit() else k: v for k, v in pairs}


@functools.cache
def _literals() -> dict[str, str]:
    """Terminal name -> its literal text, for terminals that are plain strings."""
    return {t.name: t.pattern.value for t in _lark().terminals if t.pattern.type == "str"}


def parse(source: Source, *, keep_comments: bool = False) -> ir.Module:
    """Parse one file; raise CheckError with a syntax-error diagnostic on bad input.

    With `keep_comments`, the module carries its comments (for `icldsl fmt`).
    """
    if source.bad_byte is not None:
        offset, byte = source.bad_byte
        raise CheckError([Diagnostic("syntax-error", f"byte 0x{byte:02x} is not UTF-8", source.span(offset, offset + 1),
                                     "not UTF-8", "save the file as UTF-8")])
    _check_depth(source)
    try:
        tree = _lark().parse(source.text)
    except UnexpectedInput as exc:
        raise CheckError([_syntax_diagnostic(source, exc)]) from None
    module = _ToIR(source.name).transform(tree)
    if keep_comments:
        module = dataclasses.replace(module, comments=_comments(source))
    return module


@dataclass(frozen=True, slots=True)
class Lexeme:
    """A token as the parser read it, for editors: `kind` is "keyword", "name", "string",
    "number", "punctuation" or "comment"; `start` and `end` are offsets in the text."""

    kind: str
    text: str
    start: int
    end: int


def _kind(terminal: str) -> str:
    literal = _literals().get(terminal)
    if literal is not None:
        return "keyword" if literal.isidentifier() else "punctuation"
    return terminal.lower()  # NAME, STRING, NUMBER


def tokens(source: Source) -> tuple[Lexeme, ...]:
    """Every token of a file that parses, comments included, as the parser read it (a word is a
    keyword only where the grammar expects that keyword); raises CheckError on a syntax error."""
    _check_depth(source)
    try:
        read = _lark().parse_interactive(source.text).exhaust_lexer()
    except UnexpectedInput as exc:
        raise CheckError([_syntax_diagnostic(source, exc)]) from None
    found = [Lexeme(_kind(t.type), t.value, t.start_pos, t.end_pos) for t in read]
    found += [Lexeme("comment", c.text, c.span.start, c.span.end) for c in _comments(source)]
    return tuple(sorted(found, key=lambda lexeme: lexeme.start))


@dataclass(frozen=True, slots=True)
class Prefix:
    """The start of an item being typed: the tokens read, and what the grammar accepts next,
    as (kind, text) pairs: ("keyword", "using"), ("punctuation", "{"), ("name", "")..."""

    tokens: tuple[Lexeme, ...]
    accepts: frozenset[tuple[str, str]]


def read_prefix(text: str) -> Prefix | None:
    """Read `text`, the beginning of a file or of a top-level item, up to a point where the
    user is typing (for completion); None when it does not follow the grammar that far."""
    parser = _lark().parse_interactive(text)
    try:
        read = parser.exhaust_lexer()
        accepted = parser.accepts()
    except UnexpectedInput:
        return None
    return Prefix(tuple(Lexeme(_kind(t.type), t.value, t.start_pos, t.end_pos) for t in read),
                  frozenset((_kind(t), _literals().get(t, "")) for t in accepted if t != "$END"))


# A string (its closing quote optional: an unterminated one is read to the end of its line once,
# not tried again from each quote inside it) or a comment. Linear: nothing matches two ways.
STRING_PATTERN = r'"[^"\\\n]*(?:\\.[^"\\\n]*)*"?'
_COMMENT_OR_STRING = re.compile(STRING_PATTERN + r"|//[^\n]*")


def _comments(source: Source) -> tuple[ir.Comment, ...]:
    """Every `//` comment of a file that parsed (so strings are well formed)."""
    return tuple(
        ir.Comment(m.group(), source.span(m.start(), m.end()))
        for m in _COMMENT_OR_STRING.finditer(source.text) if m.group().startswith("//")
    )


def parse_file(path: str | Path) -> tuple[Source, ir.Module]:
    source = Source.from_path(path)
    return source, parse(source)


MAX_DEPTH = 64  # nesting of brackets in types and values; far beyond what a program needs
_BRACKETS = re.compile(STRING_PATTERN + r"|//[^\n]*|[\[\]{}()]")


_DEPTH_CHANGE = {"[": 1, "{": 1, "(": 1, "]": -1, "}": -1, ")": -1}


def _check_depth(source: Source) -> None:
    """Refuse text nested deeper than MAX_DEPTH before passes that recurse meet it.

    The depth is summed in C (findall, map, accumulate), not bracket by bracket in Python: 4 MB
    of brackets cost a fraction of a second. A stray closing bracket lowers it below what it
    is after; the parser stops at that bracket, before anything deeper is read."""
    pieces = _BRACKETS.findall(source.text)  # strings, comments and brackets, in order
    depths = list(itertools.accumulate(map(_DEPTH_CHANGE.get, pieces, itertools.repeat(0))))
    if not depths or max(depths) <= MAX_DEPTH:
        return
    index = depths.index(MAX_DEPTH + 1)  # steps of one: the first too deep is one too deep
    match = next(itertools.islice(_BRACKETS.finditer(source.text), index, None))
    span = source.span(match.start(), match.end())
    raise CheckError([Diagnostic("nesting-too-deep", f"nested more than {MAX_DEPTH} levels deep", span,
                                 "too deep", "flatten the type or value, or give its inner part a name")])


def _describe(terminal: str) -> str:
    if terminal in _literals():
        return f"`{_literals()[terminal]}`"
    return _TOKEN_WORDS.get(terminal, terminal.lower())


def _syntax_diagnostic(source: Source, exc: UnexpectedInput) -> Diagnostic:
    expected = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    words = [_describe(t) for t in expected]
    help_ = None
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        start = exc.token.start_pos
        end = exc.token.end_pos or start + 1
        found = f"`{exc.token.value}`"
        keywords = [_literals()[t] for t in expected if t in _literals() and _literals()[t].isidentifier()]
        help_ = did_you_mean(str(exc.token.value), keywords) or _missing_brace(source, start)
    elif isinstance(exc, UnexpectedCharacters):
        start = end = exc.pos_in_stream
        end += 1
        found = f"character `{source.text[start]}`" if start < len(source.text) else "end of file"
        if source.text[start] == '"':
            control = _control_in_string(source.text, start)
            if control is not None:
                return _control_diagnostic(source, control)
            help_ = "strings are written on one line; escapes allowed: \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX"
    else:  # UnexpectedEOF, or a token at the end
        start = end = len(source.text)
        found = "end of file"
    if help_ is None and words:
        help_ = "expected " + _join(words)
    message = f"unexpected {found}"
    return Diagnostic("syntax-error", message, source.span(start, end), "not expected here", help_)


# Control characters a string may not hold: a name for the message, the escape to write instead.
_CONTROLS = {"\t": ("tab", "\\t"), "\r": ("carriage return", "\\r"), "\b": ("backspace", "\\b"),
             "\f": ("form feed", "\\f"), "\x00": ("NUL", "\\u0000")}


def _control_in_string(text: str, quote: int) -> int | None:
    """The offset of the first control character (other than a line break) in the string
    that opens at `quote`, before it ends."""
    end = _STRING_TEXT.match(text, quote + 1).end()
    return end if end < len(text) and text[end] < " " and text[end] != "\n" else None


# The text of a string up to its end or a control character (escapes skipped whole): linear.
_STRING_TEXT = re.compile(r'[^"\\\x00-\x1f]*(?:\\.[^"\\\x00-\x1f]*)*')


def _control_diagnostic(source: Source, offset: int) -> Diagnostic:
    char = source.text[offset]
    name, escape = _CONTROLS.get(char, ("", f"\\u{ord(char):04x}"))
    span = source.span(offset, offset + 1)
    return Diagnostic("syntax-error", f"control character U+{ord(char):04X}{f' ({name})' if name else ''} in a string",
                      span, "not allowed in a string", f"write it as the escape `{escape}`",
                      Fix(span, char, escape, f"Write `{escape}`"))


_TOP_LEVEL = ("import", "model", "lm", "embedding", "tool", "program", "data", "train")  # `_item` in icl.lark


def _missing_brace(source: Source, offset: int) -> str | None:
    """When a top-level keyword was read as a name inside a block, a `}` is missing before it."""
    before = source.text[:offset].rstrip()  # not a regex search: that is quadratic in a long name
    for keyword in _TOP_LEVEL:
        start = len(before) - len(keyword)
        if before.endswith(keyword) and not (start > 0 and _NAME_CHAR.match(before, start - 1)):
            line, _ = source.position(start)
            return f"is a `}}` missing before line {line}? `{keyword}` starts a new definition there"
    return None


_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")


def _join(words: list[str]) -> str:
    if len(words) > 8:
        words = words[:8] + ["..."]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _string(token: Token) -> str:
    # The STRING terminal admits only JSON escapes, so this cannot fail.
    return json.loads(token.value)


def _number(token: Token) -> int | float:
    text = token.value
    return float(text) if any(c in text for c in ".eE") else int(text)


class _ToIR(Transformer):
    """Builds IR nodes bottom-up; spans point at names, the parts messages quote."""

    def __init__(self, file: str) -> None:
        super().__init__()
        self.file = file

    def _call_userfunc(self, tree: lark.Tree, new_children=None):
        """Call `rule(meta, children)` directly: lark's v_args wrappers cost a third of the parse."""
        return getattr(self, tree.data)(tree.meta, *(tree.children if new_children is None else new_children))

    def _tok(self, token: Token) -> ir.Span:
        return ir.Span(self.file, token.start_pos, token.end_pos, token.line, token.column)

    def _meta(self, meta) -> ir.Span:
        return ir.Span(self.file, meta.start_pos, meta.end_pos, meta.line, meta.column)

    # -- types
    def named_type(self, _meta, name: Token, constraints: tuple[ir.Arg, ...] = ()) -> ir.NamedType:
        return ir.NamedType(name.value, constraints, self._tok(name))

    def list_type(self, meta, *children) -> ir.ListType:
        return ir.ListType(children[0], children[1] if len(children) > 1 else (), self._meta(meta))

    def constraints(self, _meta, *args: ir.Arg) -> tuple[ir.Arg, ...]:
        return args

    def optional_type(self, meta, *children) -> ir.OptionalType:
        return ir.OptionalType(children[0], self._meta(meta))

    def enum_type(self, meta, *choices) -> ir.EnumType:
        return ir.EnumType(tuple(_string(c) for c in choices), self._meta(meta))

    # -- values
    def string(self, _meta, token: Token) -> ir.Literal:
        return ir.Literal(_string(token), self._tok(token))

    def number(self, _meta, token: Token) -> ir.Literal:
        return ir.Literal(_number(token), self._tok(token))

    def true(self, meta, *_) -> ir.Literal:
        return ir.Literal(True, self._meta(meta))

    def false(self, meta, *_) -> ir.Literal:
        return ir.Literal(False, self._meta(meta))

    def list_value(self, meta, *items) -> ir.ListValue:
        return ir.ListValue(tuple(items), self._meta(meta))

    def map_value(self, meta, *items) -> ir.MapValue:
        return ir.MapValue(tuple(items), self._meta(meta))

    def env_value(self, meta, *children) -> ir.EnvValue:
        return ir.EnvValue(_string(children[0]), self._meta(meta))

    def name_value(self, _meta, name: Token) -> ir.Ref:
        return ir.Ref((name.value,), self._tok(name))

    def ref(self, meta, *names) -> ir.Ref:
        return ir.Ref(tuple(n.value for n in names), self._meta(meta))

    def arg_kw(self, meta, *children) -> ir.Arg:
        name, value = children
        return ir.Arg(name.value, value, self._meta(meta))

    def arg_pos(self, meta, *children) -> ir.Arg:
        return ir.Arg(None, children[0], self._meta(meta))

    def call(self, _meta, func: Token, *args: ir.Arg) -> ir.Call:
        return ir.Call(func.value, args, self._tok(func))

    def options(self, _meta, *args: ir.Arg) -> tuple[ir.Arg, ...]:
        return args

    # -- definitions
    def field(self, _meta, name: Token, type_: ir.TypeExpr, description: Token | None = None) -> ir.Field:
        return ir.Field(name.value, type_, _string(description) if description else None, self._tok(name))

    def model_def(self, _meta, name: Token, *fields: ir.Field) -> ir.Model:
        return ir.Model(name.value, fields, self._tok(name))

    def lm_def(self, _meta, name: Token, target: Token, options: tuple[ir.Arg, ...] = ()) -> ir.LM:
        return ir.LM(name.value, ir.Literal(_string(target), self._tok(target)), options, self._tok(name))

    def input_stmt(self, _meta, name: Token, model: Token) -> ir.Input:
        return ir.Input(name.value, ir.Ref((model.value,), self._tok(model)), self._tok(name))

    def output_stmt(self, meta, *refs) -> ir.Output:
        return ir.Output(tuple(refs), self._meta(meta))

    # Step clauses come back tagged, so lm_step can tell them from the sources.
    def using(self, _meta, name: Token) -> tuple[str, ir.Ref]:
        return "using", ir.Ref((name.value,), self._tok(name))

    def instructions(self, _meta, text: Token) -> tuple[str, ir.Literal]:
        return "instructions", ir.Literal(_string(text), self._tok(text))

    def tools(self, _meta, *names: Token) -> tuple[str, tuple[ir.Ref, ...]]:
        return "tools", tuple(ir.Ref((n.value,), self._tok(n)) for n in names)

    def max_steps(self, _meta, number: Token) -> tuple[str, ir.Literal]:
        return "max_steps", ir.Literal(_number(number), self._tok(number))

    def lm_step(self, _meta, *parts) -> ir.Step:
        frozen = parts[0].type == "FROZEN"
        kind, model, *rest = parts[1:] if frozen else parts
        sources = tuple(r for r in rest if isinstance(r, ir.Ref))
        clauses = dict(r for r in rest if isinstance(r, tuple))
        return ir.Step(
            "", kind.value, ir.Ref((model.value,), self._tok(model)), sources, clauses.get("using"),
            clauses.get("instructions"), frozen, clauses.get("tools", ()), clauses.get("max_steps"),
            self._tok(kind),
        )

    def arm(self, meta, *children) -> ir.Arm:
        label, step = children
        return ir.Arm(None if label.type == "DEFAULT" else _string(label), step, self._meta(meta))

    def branch(self, _meta, on: ir.Ref, *arms: ir.Arm) -> tuple[ir.Ref, tuple[ir.Arm, ...]]:
        return on, arms

    def step_stmt(self, _meta, name: Token, body) -> ir.Step | ir.Branch:
        span = self._tok(name)
        if isinstance(body, ir.Step):
            return dataclasses.replace(body, name=name.value, span=span)
        on, arms = body
        named = tuple(
            dataclasses.replace(a, step=dataclasses.replace(a.step, name=f"{name.value}.{a.label or 'default'}"))
            for a in arms
        )
        return ir.Branch(name.value, on, named, span)

    def embedding_def(self, _meta, name: Token, target: Token, options: tuple[ir.Arg, ...] = ()) -> ir.Embedding:
        return ir.Embedding(name.value, ir.Literal(_string(target), self._tok(target)), options, self._tok(name))

    def tool_def(self, _meta, name: Token, impl: ir.Call) -> ir.Tool:
        return ir.Tool(name.value, impl, self._tok(name))

    def import_def(self, meta, *children) -> ir.Import:
        (path,) = children
        return ir.Import(ir.Literal(_string(path), self._tok(path)), self._meta(meta))

    def program_def(self, _meta, name: Token, *rest) -> ir.Program:
        description = _string(rest[0]) if rest and isinstance(rest[0], Token) else None
        body = rest[1:] if description is not None else rest
        return ir.Program(
            name.value,
            description,
            tuple(s for s in body if isinstance(s, ir.Input)),
            tuple(s for s in body if isinstance(s, (ir.Step, ir.Branch))),
            tuple(s for s in body if isinstance(s, ir.Output)),
            self._tok(name),
        )

    def data_def(self, _meta, name: Token, loader: ir.Call) -> ir.Data:
        return ir.Data(name.value, loader, self._tok(name))

    def call_setting(self, meta, *children) -> ir.Setting:
        key, call = children
        return ir.Setting(key.value, call, self._meta(meta))

    value_setting = call_setting

    def checkpoint_setting(self, meta, *children) -> ir.Setting:
        monitor, mode = (ir.Ref((t.value,), self._tok(t)) for t in children)
        return ir.Setting("checkpoint", ir.Checkpoint(monitor, mode, self._meta(meta)), self._meta(meta))

    def early_stopping_setting(self, meta, patience: ir.Value) -> ir.Setting:
        return ir.Setting("early_stopping", patience, self._meta(meta))

    def train_def(self, _meta, program: Token, data: Token, *settings: ir.Setting) -> ir.Train:
        return ir.Train(
            ir.Ref((program.value,), self._tok(program)),
            ir.Ref((data.value,), self._tok(data)),
            settings,
            self._tok(program),
        )

    def start(self, _meta, *items) -> ir.Module:
        return ir.Module(self.file, items)

