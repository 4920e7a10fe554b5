"""What the language server knows of one version of a document: the diagnostics `icldsl
check` gives for it, and the items that parsed, indexed for hover, definitions and completion."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ..language import ir
from ..datafiles import check_data_files
from ..language.compiler import check_module
from ..language.diagnostics import CheckError, Diagnostic, sort_key
from ..language.imports import resolve_imports
from ..language.source import Source
from .incremental import IncrementalParser
from .symbols import Index


@dataclass(frozen=True)
class Analysis:
    """`module` holds the items that parsed (all of them when `parsed`: the file has no syntax
    error), after the shared items of the files it imports; `sources` the texts diagnostics
    point into."""

    version: int | None
    source: Source
    module: ir.Module
    sources: Mapping[str, Source]
    diagnostics: tuple[Diagnostic, ...]
    parsed: bool

    @functools.cached_property
    def index(self) -> Index:
        return Index(self.module, self.source)


def analyze(source: Source, parser: IncrementalParser, version: int | None = None) -> Analysis:
    """Parse with `parser` (which keeps the last version's pieces), follow imports and check,
    as `icldsl check` does: a syntax error, else an import error, else the checker's findings."""
    parsed = parser.parse(source)
    module = parsed.module(source.name)
    sources: Mapping[str, Source] = {source.name: source}
    import_error = None
    try:
        module, sources = resolve_imports(module, source)
    except CheckError as exc:
        import_error = exc
        sources = {**sources, **exc.sources}
    if parsed.error is not None:
        diagnostics = parsed.error.diagnostics
    elif import_error is not None:
        diagnostics = import_error.diagnostics
    else:
        try:
            diagnostics = tuple(check_module(module, Path(source.name).resolve().parent,
                                                 checks=(check_data_files,)))
        except CheckError as exc:
            diagnostics = exc.diagnostics
    return Analysis(version, source, module, sources, tuple(sorted(diagnostics, key=sort_key)), parsed.error is None)
