"""What may be typed at a point of a file: the keywords the grammar accepts there, and the
names in scope that fit (models after a step kind, lms after `using`, a program's values after
`from`, options of the provider or function being called, ...).

The item around the cursor is read from its start with the parser, which says what it
accepts next; the tokens read say which kind of name fits.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from ..language.vocabulary import CONSTRAINTS, PRIMITIVE_TYPES, STEP_KINDS
from ..language.checker.training import MODES, monitors
from ..language.catalogue.loaders import LOADERS
from ..language.formatter import type_text
from ..language.options import EMBEDDING_NAME, LM_NAME, Choice, Signature, type_name
from ..language.parser import STRING_PATTERN, Lexeme, read_prefix
from ..language.catalogue.training import BUDGET_KEYS, OPTIMIZERS, REWARDS
from .incremental import item_starts
from .symbols import Index, embedding_signature, function_signature, lm_signature, option_detail

MAX_ITEM = 200_000  # characters of an item read again at each completion request; longer ones get none
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LINE_CODE = re.compile(STRING_PATTERN + "|//")


@dataclass(frozen=True, slots=True)
class Completion:
    label: str
    kind: str  # "keyword", "model", "lm", "value", "option", ... (the server picks an icon from it)
    detail: str = ""
    insert: str | None = None  # the text to insert, when not the label


def complete(text: str, offset: int, index: Index) -> list[Completion]:
    """Completions at `offset` of `text`; `index` (perhaps of an earlier version) gives the names."""
    starts = item_starts(text)
    start = starts[bisect.bisect_right(starts, offset) - 1]
    before = text[start:offset]
    word = _WORD.search(before)
    before = before[:word.start()] if word else before
    if len(before) > MAX_ITEM or _in_comment(before):
        return []
    prefix = read_prefix(before)
    if prefix is None:  # the item does not parse up to here (or the cursor is in a string)
        return []
    found = [Completion(t, "keyword") for kind, t in sorted(prefix.accepts) if kind == "keyword"]
    if ("name", "") in prefix.accepts:
        found += _names(prefix.tokens, index)
    if ("string", "") in prefix.accepts:
        found += _choices(prefix.tokens)
    return found


def _in_comment(before: str) -> bool:
    line = before[before.rfind("\n") + 1:]
    return any(m.group() == "//" for m in _LINE_CODE.finditer(line))


def _names(tokens: tuple[Lexeme, ...], index: Index) -> list[Completion]:
    """The names that fit after `tokens`, the start of an item."""
    if not tokens:
        return []
    words = [t.text for t in tokens]
    item, last = words[0], words[-1]
    owner = _owner(tokens)
    if last in STEP_KINDS or (last == ":" and item == "program" and len(words) > 2 and words[-3] == "input"):
        return _symbols(index, "model")
    if last == "using":
        return _symbols(index, "lm")
    if item == "program" and len(words) > 1 and (last in ("from", "+", "output", "branch") or
                                                   (last == "," and "output" in words and owner is None)):
        return _symbols(index, "input", "step", scope=words[1])
    if last == "." and item == "program" and len(words) > 2:
        model = index.value_model(words[1], words[-2])
        return [Completion(f.name, "field", type_text(f.type)) for f in (model.fields if model else ())]
    if last == "train":
        return _symbols(index, "program")
    if last == "on" and item == "train":
        return _symbols(index, "data")
    if last in ("reward", "optimizer"):
        registry = REWARDS if last == "reward" else OPTIMIZERS
        return [Completion(name, last, f.signature.doc) for name, f in registry.items()]
    if last == "=" and item == "data" and len(words) == 3:
        return [Completion(name, "loader", loader.doc) for name, loader in LOADERS.items()]
    if last == "best":
        return [Completion(m, "monitor") for m in monitors(None)]
    if len(words) > 2 and words[-2] == "best":
        return [Completion(m, "mode") for m in MODES]
    if (last == "[" and len(words) > 1 and words[-2] == "tools") or (last == "," and owner == "tools"):
        return _symbols(index, "tool")
    if item == "model" and ((last == ":" and owner == "model") or (last == "[" and owner == "list")):
        return [Completion(t, "type") for t in PRIMITIVE_TYPES] + _symbols(index, "model")
    signature = _signature(tokens, owner)
    if signature is None:
        return []
    if last in ("(", "{", ","):
        return [Completion(name, "option", option_detail(signature, name), f"{name}: ") for name in signature.options]
    if last == ":":
        expected = signature.options.get(words[-2])
        if expected is LM_NAME or expected is EMBEDDING_NAME:
            return _symbols(index, "lm" if expected is LM_NAME else "embedding")
    return []


def _choices(tokens: tuple[Lexeme, ...]) -> list[Completion]:
    """The strings an option of fixed choices takes, after `option:`."""
    if len(tokens) < 2 or tokens[-1].text != ":":
        return []
    signature = _signature(tokens, _owner(tokens))
    expected = signature.options.get(tokens[-2].text) if signature else None
    if isinstance(expected, Choice):
        return [Completion(f'"{v}"', "value", type_name(expected)) for v in expected.values]
    return []


def _symbols(index: Index, *kinds: str, scope: str | None = None) -> list[Completion]:
    return [Completion(s.name, s.kind, s.scope) for s in index.of_kind(*kinds, scope=scope)]


def _owner(tokens: tuple[Lexeme, ...]) -> str | None:
    """What the innermost open bracket belongs to: the word before it ("exact_match",
    "budget", "tools"...), "model" for a model's body, "lm" for an lm's options; None at the
    top of a block."""
    stack: list[int] = []
    for i, t in enumerate(tokens):
        if t.text in ("(", "[", "{") and t.kind == "punctuation":
            stack.append(i)
        elif t.text in (")", "]", "}") and t.kind == "punctuation" and stack:
            stack.pop()
    if not stack:
        return None
    i = stack[-1]
    item = tokens[0].text
    if len(stack) == 1 and tokens[i].text == "{":
        return item if item in ("model", "lm", "embedding") else None
    return tokens[i - 1].text if i > 0 else None


def _signature(tokens: tuple[Lexeme, ...], owner: str | None) -> Signature | None:
    """The options accepted inside the innermost open bracket."""
    item = tokens[0].text
    if owner in ("lm", "embedding"):
        target = next((t.text for t in tokens if t.kind == "string"), '""')
        return (lm_signature if owner == "lm" else embedding_signature)(target.strip('"'))
    if owner == "budget":
        return Signature({key: int for key in BUDGET_KEYS})
    if item == "model" and owner in (*CONSTRAINTS, "]"):  # `str(...)`, `list[T](...)`
        return Signature(CONSTRAINTS["list" if owner == "]" else owner])
    if owner is None:
        return None
    words = [t.text for t in tokens]
    kind = "loader" if item == "data" else next(
        (w for w in reversed(words) if w in ("reward", "optimizer")), None) if item == "train" else None
    found = function_signature(kind, owner) if kind else None
    return found[0] if found else None
