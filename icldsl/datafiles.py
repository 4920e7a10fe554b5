"""The checker's look at the data: each `data` block's files opened, cheaply (datasets/peek.py),
so a missing file or a column the program's fields cannot find is reported at its place in the
`.icl` file before anything loads or runs.

A file in a folder that exists but lacks it is an error (with the folder's nearest name as a
fix); a file whose folder does not exist yet is a warning (data a later step makes);
`icldsl check --no-data` opens nothing.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from .language import ir
from .language.checker.common import first, output_model
from .datasets.files import FORMATS
from .datasets.peek import Peek, peek
from .datasets.rows import resolve
from .language.diagnostics import Diagnostic, Fix, Suggestion, did_you_mean
from .language.catalogue.loaders import LOADERS
from .language.options import bind
from .language.source import Span

MAX_ENTRIES = 5000  # names of a folder compared with a missing file's
SHOWN_COLUMNS = 8  # columns listed in a message


def check_data_files(module: ir.Module, base_dir: Path) -> list[Diagnostic]:
    """Every file loader's files are there and hold a column for each field the programs trained
    on them read; the built-in loaders' `path` folders are there (without one they download)."""
    found: list[Diagnostic] = []
    users = _users(module)
    peeked: dict[tuple, Peek | OSError | ValueError] = {}  # a file many data blocks read is opened once
    for data in first(module.of(ir.Data)).values():
        loader = LOADERS.get(data.loader.func)
        if loader is None:
            continue
        bound = bind(loader.signature, data.loader.args)
        paths = {k: v for k, v in bound.items() if k in ("path", "test")
                 and isinstance(v, ir.Literal) and isinstance(v.value, str)}
        if data.loader.func not in FORMATS:
            found += [_missing(data, v, base_dir, folder=True) for v in paths.values()
                      if not resolve(v.value, base_dir).is_dir()]
            continue
        options = {k: v.value for k, v in bound.items() if isinstance(v, ir.Literal)}
        mapping = {item.name: item for item in bound["map"].items} if isinstance(bound.get("map"), ir.MapValue) else {}
        for literal in paths.values():
            key = (data.loader.func, resolve(literal.value, base_dir), options.get("delimiter"), options.get("key"))
            if key not in peeked:
                try:
                    stat = key[1].stat()
                    peeked[key] = _peek(*key, stat.st_mtime_ns, stat.st_size)
                except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
                    peeked[key] = exc
            seen = peeked[key]
            if isinstance(seen, (OSError, ValueError)):
                found.append(_unreadable(data, literal, base_dir, seen))
            elif seen.columns is not None:
                found += _columns(data, literal.value, seen, mapping, bound.get("map"), users.get(data.name, ()))
    return _unique(found)


@functools.lru_cache(maxsize=256)
def _peek(loader: str, path: Path, delimiter: str | None, key: str | None, mtime: int, size: int) -> Peek:
    """`peek`, once per version of a file: the language server checks at each change of the text."""
    return peek(loader, path, {k: v for k, v in (("delimiter", delimiter), ("key", key)) if v is not None})


def _users(module: ir.Module) -> dict[str, list[tuple[str, ir.Model]]]:
    """Data name -> (role, model) of each side of the programs trained on it."""
    programs = first(module.of(ir.Program))
    models = first(module.of(ir.Model))
    users: dict[str, list[tuple[str, ir.Model]]] = {}
    for train in module.of(ir.Train):
        program = programs.get(train.program.name)
        if program is None or len(program.inputs) != 1:
            continue
        sides = (("input", models.get(program.inputs[0].model.name)), ("output", output_model(program, models)))
        users.setdefault(train.data.name, []).extend((role, m) for role, m in sides if m is not None)
    return users


def _unreadable(data: ir.Data, literal: ir.Literal, base_dir: Path, exc: OSError | ValueError) -> Diagnostic:
    if not isinstance(exc, OSError):
        return Diagnostic("missing-data", f"data `{data.name}` reads a file whose name holds a NUL character "
                          "(\\u0000), which no file name can", literal.span, "not a file name",
                          "remove the \\u0000 from the path")
    if isinstance(exc, FileNotFoundError):
        return _missing(data, literal, base_dir, folder=False)
    what = "a folder, not a file" if isinstance(exc, IsADirectoryError) else f"unreadable: {exc.strerror}"
    return Diagnostic("missing-data", f"data `{data.name}` reads `{literal.value}`, which is {what}", literal.span,
                      "cannot be read", "name a data file" if isinstance(exc, IsADirectoryError) else None)


def _missing(data: ir.Data, literal: ir.Literal, base_dir: Path, *, folder: bool) -> Diagnostic:
    """A path that is not there: an error when its folder exists (with the nearest name in it),
    a warning when the folder is missing too (unless it is itself the folder a loader reads)."""
    written = literal.value
    path = resolve(written, base_dir)
    parent = path.parent
    if parent.is_dir():
        near = did_you_mean(path.name, _entries(parent, folders=folder))
        what = "folder" if folder else "file"
        return Diagnostic("missing-data", f"data `{data.name}` reads `{written}`, but there is no such {what}",
                          literal.span, f"no such {what}", _replaced(near, written, path, path))
    missing = parent
    while not missing.parent.is_dir() and missing.parent != missing:
        missing = missing.parent
    near = did_you_mean(missing.name, _entries(missing.parent, folders=True)) if missing.parent.is_dir() else None
    shown = os.path.relpath(missing, base_dir) if not Path(written).expanduser().is_absolute() else str(missing)
    return Diagnostic("missing-data-folder", f"data `{data.name}` reads `{written}`, but its folder `{shown}` does "
                      "not exist", literal.span, "no such folder",
                      _replaced(near, written, path, missing) or "make the data before `icldsl fit`, or correct "
                      "the path; `icldsl check --no-data` opens no data file")


def _entries(folder: Path, *, folders: bool) -> list[str]:
    """Up to MAX_ENTRIES names of the files (or folders) in `folder`."""
    names = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir() == folders:
                    names.append(entry.name)
                if len(names) >= MAX_ENTRIES:
                    break
    except OSError:
        return []
    return names


def _replaced(near: Suggestion | None, written: str, path: Path, part: Path) -> Suggestion | None:
    """The suggestion of a name for `part` (the missing file or folder of `path`) as the whole
    path written in the file, so its fix replaces the string."""
    if near is None:
        return None
    tail = str(path)[len(str(part)):]  # what follows the missing part
    mistaken = part.name + tail
    if not written.replace(os.sep, "/").endswith(mistaken.replace(os.sep, "/")):
        return None
    corrected = written[:len(written) - len(mistaken)] + near.choice + tail.replace(os.sep, "/")
    return Suggestion(f"did you mean `{corrected}`?", written, corrected)


def _columns(data: ir.Data, file: str, seen: Peek, mapping: Mapping[str, ir.Arg], given: ir.Value | None,
             sides: Iterable[tuple[str, ir.Model]]) -> Iterator[Diagnostic]:
    """A column for every required field (and, when every column is known, every mapped field)."""
    columns = sorted(seen.columns or ())
    shown = ", ".join(columns[:SHOWN_COLUMNS]) + (f", ... ({len(columns)} in all)" if len(columns) > SHOWN_COLUMNS
                                                   else "") or "none"
    reads = {mapping[f.name].value.value if f.name in mapping else f.name for _, m in sides for f in m.fields}
    free = [c for c in columns if c not in reads]  # columns no field reads: what a missing one may be
    for role, model in sides:
        for f in model.fields:
            required = not isinstance(f.type, ir.OptionalType)
            item = mapping.get(f.name)
            if item is not None:
                if not isinstance(item.value, ir.Literal) or not isinstance(item.value.value, str):
                    continue
                column = item.value.value
                if column not in seen.columns and (required or seen.complete):
                    yield Diagnostic("data-mismatch", f"`{file}` has no column `{column}` (mapped to `{f.name}`)",
                                     item.value.span, f"columns: {shown}",
                                     did_you_mean(column, free or columns) or f"columns: {shown}")
            elif required and f.name not in seen.columns:
                yield _unmapped(data, file, role, model, f, free, shown, given)


def _unmapped(data: ir.Data, file: str, role: str, model: ir.Model, f: ir.Field, free: list[str], shown: str,
              given: ir.Value | None) -> Diagnostic:
    message = f"`{file}` has no column `{f.name}` for the program's {role} field `{model.name}.{f.name}`"
    near = did_you_mean(f.name, free)
    if near is None:
        return Diagnostic("data-mismatch", message, data.span, f"columns: {shown}",
                          f'name the column it reads with `map: {{ {f.name}: "column" }}`, or make it optional')
    entry = f'{f.name}: "{near.choice}"'
    if isinstance(given, ir.MapValue) and given.items:  # after its last entry
        last = given.items[-1].span
        fix = Fix(_at(last, last.end), "", f", {entry}", f"Add `{entry}` to `map`")
    elif isinstance(given, ir.MapValue):  # inside `{}`
        fix = Fix(_at(given.span, given.span.start + 1), "", f" {entry} ", f"Add `{entry}` to `map`")
    else:  # after the loader's last argument (a file loader has one: its path)
        last = data.loader.args[-1].span
        fix = Fix(_at(last, last.end), "", f", map: {{ {entry} }}", f"Add `map: {{ {entry} }}`")
    return Diagnostic("data-mismatch", message, data.span, f"columns: {shown}", f"add map: {{ {entry} }}", fix)


def _at(span: Span, offset: int) -> Span:
    """An empty span at `offset` in `span`'s file (a fix uses only its offsets)."""
    return Span(span.file, offset, offset, span.line, span.column)


def _unique(found: list[Diagnostic]) -> list[Diagnostic]:
    """Each finding once (a data block trained on by several programs is checked for each)."""
    seen = set()
    kept = []
    for d in found:
        key = (d.code, d.message, d.span)
        if key not in seen:
            seen.add(key)
            kept.append(d)
    return kept
