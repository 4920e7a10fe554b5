"""`import "other.icl"`: one module from a file and the files it imports.

An import brings the other file's models, LMs and tools (and, in turn, what
that file imports); its programs, data and train blocks stay there. Paths are
relative to the importing file.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from . import ir
from .diagnostics import CheckError, Diagnostic
from .parser import parse
from .source import Source

SHARED = (ir.Model, ir.LM, ir.Embedding, ir.Tool)


def load_module(source: Source) -> tuple[ir.Module, dict[str, Source]]:
    """The file's module with its imports' shared items first, and every source read.

    Raises CheckError (carrying the sources) on a syntax error or a bad import.
    """
    try:
        module = parse(source)
    except CheckError as exc:
        exc.sources = {source.name: source}
        raise
    return resolve_imports(module, source)


def resolve_imports(module: ir.Module, source: Source) -> tuple[ir.Module, dict[str, Source]]:
    """`module`, parsed from `source`, with its imports' shared items first, and every source read
    (the language server parses the file itself, reusing what did not change).

    Raises CheckError (carrying the sources) on a bad import.
    """
    sources: dict[str, Source] = {source.name: source}
    errors: list[Diagnostic] = []
    root = Path(source.name).resolve()
    imported = _shared_items(module, Path(source.name), sources, errors, [root], {root})
    if errors:
        raise CheckError(errors, sources)
    own = tuple(item for item in module.items if not isinstance(item, ir.Import))
    return dataclasses.replace(module, items=(*imported, *own)), sources


def _shared_items(module: ir.Module, path: Path, sources: dict[str, Source], errors: list[Diagnostic],
                  chain: list[Path], read: set[Path]) -> list[ir.Item]:
    """The shared items `module`'s imports bring, reading each file once: `read` holds the
    resolved path of every file in `sources`, so an import asks a set, not every file again."""
    items: list[ir.Item] = []
    for imp in module.of(ir.Import):
        name = str(path.parent / imp.path.value)
        try:
            target = _resolved(path.parent / imp.path.value)
        except ImportPathError as exc:
            errors.append(Diagnostic("import-error", f"cannot import {_shown(imp.path.value)}: {exc}", imp.path.span,
                                     "cannot be read", exc.help))
            continue
        if target in chain:
            cycle = " -> ".join(p.name for p in [*chain[chain.index(target):], target])
            errors.append(Diagnostic("import-error", f"imports go round in a circle: {cycle}", imp.span,
                                     "circular import", "move what both files need into a third file"))
            continue
        if target in read:
            continue  # already imported along another path
        if target.suffix != ".icl" or (target.exists() and not target.is_file()):
            # Never read another kind of file: its text would be quoted in a syntax error.
            errors.append(Diagnostic("import-error", f"cannot import {_shown(imp.path.value)}: only .icl files can be "
                                     "imported", imp.path.span, "not an .icl file",
                                     "import a file of models, LMs and tools whose name ends in .icl"))
            continue
        try:
            other = Source.from_path(target)
        except OSError as exc:
            errors.append(Diagnostic("import-error", f"cannot import {_shown(imp.path.value)}: {exc.strerror}",
                                     imp.path.span, "not found", f"the path is relative to {path.parent or '.'}"))
            continue
        other = Source(name, other.text, other.bad_byte)
        sources[name] = other
        read.add(target)
        try:
            parsed = parse(other)
        except CheckError as exc:
            errors.extend(exc.diagnostics)
            continue
        items += _shared_items(parsed, Path(name), sources, errors, [*chain, target], read)
        items += [item for item in parsed.items if isinstance(item, SHARED)]
    return items


class ImportPathError(ValueError):
    """A path that names no file that could be read, with the help to give."""

    def __init__(self, message: str, help_: str) -> None:
        super().__init__(message)
        self.help = help_


def _resolved(path: Path) -> Path:
    """`path` made absolute with its symbolic links followed; ImportPathError when that cannot be
    done: a NUL character in the name, a name longer than the system allows, links in a loop."""
    if "\x00" in str(path):
        raise ImportPathError("a file name cannot hold a NUL character (`\\u0000`)", "remove it from the path")
    try:
        resolved = path.resolve()
        resolved.stat()
    except RuntimeError:  # Python 3.11's pathlib for links that lead to each other
        raise ImportPathError("its symbolic links go round in a circle", "point the link at a real file") from None
    except (FileNotFoundError, NotADirectoryError):
        return resolved  # missing: said where it is read
    except OSError as exc:  # too long a name (ENAMETOOLONG), a loop (ELOOP) met by stat
        raise ImportPathError(exc.strerror or str(exc), "shorten the path, or fix the links along it") from None
    return resolved


MAX_SHOWN = 80  # characters of an import path quoted in a message


def _shown(path: str) -> str:
    return repr(path if len(path) <= MAX_SHOWN else path[:MAX_SHOWN] + "...")
