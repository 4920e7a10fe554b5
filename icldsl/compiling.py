"""`icldsl.check` and `icldsl.compile`: a `.icl` file as `icldsl check` judges it, and one of
its programs ready to call, untrained.

Both take the file's path and, optionally, its text (what an editor holds, not yet saved):
the path still names the file in diagnostics and is where its imports, tools and data
files are found from. `icldsl check` runs `check_source` on each file it is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .language.compiler import compile_source
from .language.diagnostics import JSON_VERSION, CheckError, Diagnostic, render_all, render_concise, sort_key, to_json
from .datafiles import check_data_files
from .errors import Error
from .language.source import Source

TYPE_CHECKING = False  # `icldsl check` runs this module and must not load the runtime (tests/cli/test_startup.py)
if TYPE_CHECKING:
    from .lm.base import LMClient
    from .lm.cache import LMCache, Mode
    from .lm.trace import Tracer
    from .runtime.program import Program


class NoProgram(Error):
    """`icldsl.compile` was asked for a program the file does not define."""


@dataclass(frozen=True, slots=True)
class Checked:
    """What checking one file found: its diagnostics, errors first and each in the order of
    the places they point at (as `icldsl check` prints them), and the files they point into
    (the file and those it imports). `ok` when none is an error; warnings may remain."""

    file: str
    diagnostics: tuple[Diagnostic, ...]
    sources: Mapping[str, Source]

    @classmethod
    def of(cls, source: Source, diagnostics: Iterable[Diagnostic], sources: Mapping[str, Source]) -> "Checked":
        """What checking `source` found: `diagnostics` in the order they are printed, pointing
        into `source` and the files it imports (`sources`)."""
        return cls(source.name, tuple(sorted(diagnostics, key=sort_key)), {source.name: source, **sources})

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def render(self, *, concise: bool = False, color: bool = False) -> str:
        """The diagnostics as `icldsl check` prints them: each with its source line and caret
        (`--format full`), or one line each (`concise`); empty when there are none."""
        if concise:
            return "".join(render_concise(d) + "\n" for d in self.diagnostics)
        return "".join(text + "\n\n" for text in render_all(self.diagnostics, self.sources, color=color))

    def to_json(self) -> dict:
        """This file's object in `icldsl check --format json` (docs/diagnostics.md)."""
        errors = len(self.errors)
        return {"file": self.file, "ok": not errors, "errors": errors, "warnings": len(self.diagnostics) - errors,
                "diagnostics": [to_json(d, self.sources) for d in self.diagnostics]}


def check(path: str | Path, *, text: str | None = None, data: bool = True) -> Checked:
    """Check the `.icl` file at `path` (or `text`, as if it were that file's) as `icldsl check`
    does: the grammar, names, types, options, its imports, the tools and rewards it names
    (found, never imported) and, with `data` (`icldsl check --no-data` turns it off), its data
    files. Errors in the file are returned, not raised; OSError when the file cannot be read."""
    return check_source(_source(path, text), data=data)


def check_source(source: Source, *, data: bool = True) -> Checked:
    """`check` of a source already read (`icldsl check` reads standard input too)."""
    try:
        compiled = compile_source(source, checks=(check_data_files,) if data else ())
        found, sources = compiled.warnings, compiled.sources
    except CheckError as exc:
        found, sources = exc.diagnostics, exc.sources
    return Checked.of(source, found, sources)


def check_json(checked: Sequence[Checked]) -> str:
    """The document `icldsl check --format json` prints for the files it checked."""
    files = [c.to_json() for c in checked]
    return json.dumps({"version": JSON_VERSION, "ok": all(f["ok"] for f in files), "files": files},
                      ensure_ascii=False, indent=2)


def compile(path: str | Path, *, text: str | None = None, program: str | None = None,
            clients: Mapping[str, LMClient] | None = None, cache: LMCache | None = None,
            cache_mode: Mode = "normal", tracers: Sequence[Tracer] | None = None) -> Program:
    """The program `program` (or the file's first) of the `.icl` file at `path` (or `text`,
    as if it were that file's), untrained: its steps' instructions and examples are the
    file's. Call it like a trained one (`p(question=...)`, `await p.acall(...)`, `p.map`).

    `clients`, `cache`, `cache_mode` and `tracers` are `icldsl.load`'s. Raises CheckError
    with every diagnostic when the file has errors (its data files are not opened: a
    program needs none), NoProgram when it has no such program, OSError when it cannot be read.
    """
    from .training.session import program_of  # the one maker of a compiled file's Program

    compiled = compile_source(_source(path, text))
    name = program or next(iter(compiled.programs), None)
    if name not in compiled.programs:
        known = ", ".join(f"`{p}`" for p in compiled.programs) or "none"
        raise NoProgram(f"{path} has no program" + (f" `{name}`" if name else "") + f" (its programs: {known})")
    return program_of(compiled, name, clients, cache=cache, cache_mode=cache_mode, tracers=tracers)


def _source(path: str | Path, text: str | None) -> Source:
    return Source.from_path(path) if text is None else Source(str(path), text)
