"""Diagnostics: the registry of codes, the sink that gathers them, and their renderings
(for people: full and concise; for machines: JSON and GitHub workflow annotations)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Iterable, Literal, Mapping

from ..errors import Error
from .source import Source, Span

Severity = Literal["error", "warning"]

# Every code a diagnostic may carry, with its severity and what it means.
# Codes are stable: tools and users match on them.
CODES: Mapping[str, tuple[Severity, str]] = {
    "syntax-error": ("error", "the text does not follow the grammar"),
    "nesting-too-deep": ("error", "types or values nested too deeply to be meant"),
    "duplicate-name": ("error", "a name is defined twice in the same scope"),
    "undefined-name": ("error", "a name is used but never defined"),
    "unknown-field": ("error", "a field is named that the model does not have"),
    "unknown-option": ("error", "an option or argument that does not exist here"),
    "missing-option": ("error", "a required option or argument is missing"),
    "wrong-type": ("error", "a value of the wrong type"),
    "invalid-value": ("error", "a value of the right type outside what is allowed"),
    "secret-in-source": ("error", "an API key written in the file instead of read from the environment"),
    "unknown-provider": ("error", "an LM name whose provider prefix is not known"),
    "unknown-function": ("error", "a reward, optimizer or data loader that does not exist"),
    "duplicate-setting": ("error", "a train setting given twice"),
    "missing-setting": ("error", "a train setting that must be given is missing"),
    "program-shape": ("error", "a program without exactly one input and one output"),
    "ambiguous-lm": ("error", "a step that does not say which of several LMs to use"),
    "field-conflict": ("error", "two merged values carry a field of the same name"),
    "branch-mismatch": ("error", "the arms of a branch make different models"),
    "cycle": ("error", "a step that depends on itself"),
    "data-mismatch": ("error", "a dataset that cannot fill the program's input or expected output"),
    "missing-data": ("error", "a data file that is not there or cannot be read (`check --no-data` skips data files)"),
    "missing-data-folder": ("warning", "a data file whose folder does not exist yet"),
    "import-error": ("error", "an imported file that cannot be read, or imports that go in a circle"),
    "incomplete-branch": ("warning", "a branch with labels that no arm handles"),
    "unused-name": ("warning", "a model or LM that nothing uses"),
}


# Codes whose span holds a secret, masked when the source line is shown.
SECRET_CODES = frozenset({"secret-in-source"})


class Suggestion(str):
    """A `help:` text that proposes `choice` in place of `word`: a diagnostic given one as its
    help carries the edit (`Fix`) that applies it."""

    word: str
    choice: str

    def __new__(cls, text: str, word: str, choice: str) -> "Suggestion":
        made = super().__new__(cls, text)
        made.word, made.choice = word, choice
        return made

    def __getnewargs__(self) -> tuple[str, str, str]:  # copied and pickled whole
        return str(self), self.word, self.choice


@dataclass(frozen=True, slots=True)
class Fix:
    """The edit that does what a diagnostic's help says: `new` replaces the first `old` inside
    `span` (the whole word, when `old` is a name), or, with `old` empty, goes in at `span.start`.
    `title` says it in a few words, for an editor's menu of fixes."""

    span: Span
    old: str
    new: str
    title: str

    def locate(self, text: str) -> tuple[int, int] | None:
        """The offsets in `text` (the whole file the span is in) of what the fix replaces, or None
        when that text no longer holds `old` there."""
        inside = text[self.span.start:self.span.end]
        if not self.old:
            return self.span.start, self.span.start
        # A name is matched whole: `fo` is not found inside `foo`.
        before, after = (r"\b" if re.match(r"\w", c) else "" for c in (self.old[0], self.old[-1]))
        found = re.search(before + re.escape(self.old) + after, inside)
        return (self.span.start + found.start(), self.span.start + found.end()) if found else None


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding in a file: its stable `code` (docs/diagnostics.md) and `severity`
    ("error" or "warning"), a `message`, the `span` it points at (`file`, `line`, `column`;
    None when it has no place), the `label` under the caret, a `help` line and the `fix`
    that does what the help says, when there is one."""

    code: str
    message: str
    span: Span | None
    label: str = ""
    help: str | None = None
    fix: Fix | None = None  # given, or made from a `Suggestion` help

    def __post_init__(self) -> None:
        if self.fix is None and isinstance(self.help, Suggestion) and self.span is not None:
            title = f"Replace `{self.help.word}` with `{self.help.choice}`"
            object.__setattr__(self, "fix", Fix(self.span, self.help.word, self.help.choice, title))

    @property
    def severity(self) -> Severity:
        return CODES[self.code][0]


@dataclass(slots=True)
class Sink:
    """Gathers diagnostics; passes add to it and never stop early."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def add(self, code: str, message: str, span: Span | None, label: str = "", help: str | None = None,
            fix: Fix | None = None) -> None:
        if code not in CODES:
            raise KeyError(f"unregistered diagnostic code {code!r}")
        self.diagnostics.append(Diagnostic(code, message, span, label, help, fix))

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


class CheckError(Error):
    """Raised once with every diagnostic when a file has errors; `sources` holds
    the files they point into (the file and those it imports), when known."""

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: Mapping[str, Source] | None = None) -> None:
        self.diagnostics = tuple(diagnostics)
        self.sources = dict(sources or {})
        errors = sum(d.severity == "error" for d in self.diagnostics)
        super().__init__(f"{errors} error(s)")


def did_you_mean(word: str, candidates: Iterable[str], cutoff: float = 0.6) -> Suggestion | None:
    """A `help:` line suggesting the closest candidate, if one is close (similarity at least `cutoff`);
    the diagnostic it is given to can then replace `word` with it."""
    match = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=cutoff)
    return Suggestion(f"did you mean `{match[0]}`?", word, match[0]) if match else None


def sort_key(d: Diagnostic) -> tuple:
    """Errors first, then warnings; each in the order of the files and places they point at."""
    return (d.severity != "error", *((d.span.file, d.span.start) if d.span else ("", -1)))


def secret_spans(diagnostics: Iterable[Diagnostic]) -> tuple[Span, ...]:
    """The spans of the secrets some of `diagnostics` point at: every excerpt of a line
    masks them, whichever diagnostic shows that line."""
    return tuple(d.span for d in diagnostics if d.code in SECRET_CODES and d.span is not None)


def _masked(text: str, line: int, source: Source, secrets: Iterable[Span]) -> str:
    """Line `line` of `source` (`text`) with the characters of each secret on it turned into
    `*`, its first and last (the quotes) kept."""
    chars = list(text)
    for span in secrets:
        if span.file != source.name:
            continue
        first_line, first_col = source.position(span.start)
        last_line, last_col = source.position(max(span.end, span.start + 1) - 1)
        if not first_line <= line <= last_line:
            continue
        start = first_col if first_line == line else 0  # the character after the opening quote
        stop = last_col - 1 if last_line == line else len(chars)  # the closing quote's index
        chars[start:stop] = "*" * max(0, stop - start)
    return "".join(chars)


def render(d: Diagnostic, sources: Mapping[str, Source], *, color: bool = False,
           secrets: Iterable[Span] = ()) -> str:
    """Ruff-style full rendering: header, place, source line, caret, help.

    The line shown masks the secret of `d` (a secret-in-source) and every span of `secrets`
    on it: pass `secret_spans` of all the diagnostics shown together (`render_all` does)."""
    red, blue, bold, reset = ("\x1b[31m", "\x1b[34m", "\x1b[1m", "\x1b[0m") if color else ("",) * 4
    tint = red if d.severity == "error" else "\x1b[33m" if color else ""
    lines = [f"{tint}{bold}{d.severity}[{d.code}]{reset}{bold}: {d.message}{reset}"]
    source = sources.get(d.span.file) if d.span else None
    if d.span and source:
        line, col = d.span.line, d.span.column
        gutter = " " * len(str(line))
        text = _masked(source.line_text(line), line, source, (*secret_spans((d,)), *secrets))
        end_line, end_col = source.position(max(d.span.end, d.span.start + 1) - 1)
        width = max(1, (end_col - col + 1) if end_line == line else len(text) - col + 1)
        text, start, width = _window(text, col - 1, width)
        caret = " " * start + "^" * width
        lines += [
            f"{gutter}{blue}-->{reset} {d.span.file}:{line}:{col}",
            f"{gutter} {blue}|{reset}",
            f"{blue}{line} |{reset} {text}",
            f"{gutter} {blue}|{reset} {tint}{caret}{(' ' + d.label) if d.label else ''}{reset}",
            f"{gutter} {blue}|{reset}",
        ]
    elif d.span:
        lines.append(f" --> {d.span.file}:{d.span.line}:{d.span.column}")
    if d.help:
        lines.append(f"{bold}help{reset}: {d.help}")
    return "\n".join(lines)


MAX_LINE_SHOWN = 200  # characters of a source line quoted under a diagnostic


def _window(text: str, start: int, width: int) -> tuple[str, int, int]:
    """A long line cut to MAX_LINE_SHOWN characters around the span at `start` (`...` where it
    is cut), with the span's start and width in what is shown: a 4 MB line is not printed whole."""
    if len(text) <= MAX_LINE_SHOWN:
        return text, start, width
    low = max(0, start - MAX_LINE_SHOWN // 4)
    high = min(len(text), low + MAX_LINE_SHOWN)
    shown = ("..." if low else "") + text[low:high] + ("..." if high < len(text) else "")
    return shown, start - low + (3 if low else 0), max(1, min(width, high - start))


def render_all(diagnostics: Iterable[Diagnostic], sources: Mapping[str, Source], *,
               color: bool = False) -> list[str]:
    """Each diagnostic rendered, errors first and each in file order, every secret any of them found
    masked in all."""
    ordered = sorted(diagnostics, key=sort_key)
    secrets = secret_spans(ordered)
    return [render(d, sources, color=color, secrets=secrets) for d in ordered]


def render_concise(d: Diagnostic) -> str:
    """One line per diagnostic, for CI logs: `file:line:col: severity[code]: message`."""
    place = f"{d.span.file}:{d.span.line}:{d.span.column}: " if d.span else ""
    hint = f" ({d.help})" if d.help else ""
    return f"{place}{d.severity}[{d.code}]: {d.message}{hint}"


# The version of the JSON form below; it changes only when a key is removed or changes meaning.
JSON_VERSION = 1


def extent(d: Diagnostic, sources: Mapping[str, Source]) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """1-based (line, column) of the first character of a diagnostic's span and of the character
    just after it (columns count characters); None without a span or its source."""
    source = sources.get(d.span.file) if d.span else None
    if source is None:
        return None
    return (d.span.line, d.span.column), source.position(max(d.span.end, d.span.start))


def to_json(d: Diagnostic, sources: Mapping[str, Source]) -> dict:
    """One diagnostic as the object `icldsl check --format json` prints (docs/diagnostics.md)."""
    place = extent(d, sources)
    return {
        "code": d.code,
        "severity": d.severity,
        "message": d.message,
        "label": d.label or None,
        "help": d.help,
        "file": d.span.file if d.span else None,
        "start": {"line": place[0][0], "column": place[0][1]} if place else None,
        "end": {"line": place[1][0], "column": place[1][1]} if place else None,
    }


def _escape(text: str, *, prop: bool = False) -> str:
    """GitHub's escaping of a workflow command's message (and, with `prop`, of a property value)."""
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if prop else text


def render_github(d: Diagnostic, sources: Mapping[str, Source]) -> str:
    """A GitHub Actions workflow command that annotates the diagnostic's place in a pull request:
    `::error file=F,line=L,col=C,endLine=L2,endColumn=C2,title=T::message`."""
    props = []
    place = extent(d, sources)
    if d.span:
        props.append(f"file={_escape(d.span.file, prop=True)}")
    if place:
        (line, col), (end_line, end_col) = place
        props += [f"line={line}", f"col={col}", f"endLine={end_line}", f"endColumn={end_col}"]
    props.append(f"title={_escape(f'icldsl {d.code}', prop=True)}")
    message = d.message + (f"\nhelp: {d.help}" if d.help else "")
    return f"::{d.severity} {','.join(props)}::{_escape(message)}"
