"""The verbs about `.icl` text: `check`, `fmt`, and `lsp` (the checker for editors)."""

from __future__ import annotations

import argparse
import difflib
import sys
from pathlib import Path

from ..language.diagnostics import CheckError, render_github
from ..errors import EXIT_INPUT, EXIT_OK
from .console import STDIN, Failure, err, print_diagnostics, read_source, stdin_once


def cmd_check(args: argparse.Namespace) -> int:
    """Every file is checked, even after one with errors; exit 1 when any had an error."""
    from ..compiling import check_json, check_source

    stdin_once(**{f"FILE {i + 1}": path for i, path in enumerate(args.files)})
    sources = [read_source(path) for path in args.files]
    checked = [check_source(source, data=args.data) for source in sources]
    failed = not all(c.ok for c in checked)
    if args.format == "json":
        print(check_json(checked))
        return EXIT_INPUT if failed else EXIT_OK
    for source, result in zip(sources, checked):
        if args.format == "github":
            for d in result.diagnostics:
                print(render_github(d, result.sources))
        else:
            print_diagnostics(result.diagnostics, source, result.sources, args.format)
        if not args.quiet and result.ok:
            err(f"{source.name}: ok")
    return EXIT_INPUT if failed else EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    """Files are rewritten in place; `-` is read from standard input and, formatted, written
    to standard output (as is, when it is already formatted)."""
    from ..language.formatter import format_source  # here: `check` does without it

    stdin_once(**{f"FILE {i + 1}": path for i, path in enumerate(args.files)})
    changed = []
    for path in args.files:
        source = read_source(path)
        try:
            formatted = format_source(source)
        except CheckError as exc:
            print_diagnostics(exc.diagnostics, source, exc.sources, "full")
            return EXIT_INPUT
        if path == STDIN and not (args.check or args.diff):
            sys.stdout.write(formatted)
        if formatted == source.text:
            continue
        changed.append(source.name)
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(
                source.text.splitlines(keepends=True), formatted.splitlines(keepends=True), source.name,
                source.name))
        elif not args.check and path != STDIN:
            Path(path).write_text(formatted, encoding="utf-8")
    verb = "would reformat" if args.check or args.diff else "reformatted"
    for name in changed if not args.quiet or args.check or args.diff else ():
        err(f"{verb} {name}")
    return EXIT_INPUT if changed and (args.check or args.diff) else EXIT_OK


def cmd_lsp(args: argparse.Namespace) -> int:
    try:
        from ..lsp.server import serve  # the LSP library loads only for this verb
    except ImportError as exc:
        raise Failure(f"the language server needs the `lsp` extra ({exc.name} is missing): "
                      "pip install 'icldsl[lsp]'") from None
    serve()
    return EXIT_OK
