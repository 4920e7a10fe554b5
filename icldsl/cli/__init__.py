"""The `icldsl` command: the only package that prints or exits.

Exit codes: `icldsl.errors.EXIT_STATUSES`. Every error a user can fix derives from
`icldsl.Error`.

`arguments` holds the command line; the verbs live by job in `checking`, `training`,
`running`, `artifacts`, `cache` and `project` (init, completion), sharing `console`
(errors, colour, diagnostics, files and `-`), `progress` and `tables`. A verb's module is
imported only when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from typing import Sequence

from ..errors import EXIT_CLOSED_PIPE, EXIT_INTERRUPTED, Error
from .arguments import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            sys.stdout.flush()  # here, where a reader that closed the pipe early is caught, not at exit
    except BrokenPipeError:
        return _closed_pipe()


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)  # --help and bad usage exit (SystemExit) from here
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
        return _command(args)(args)
    except SystemExit as exc:  # ours carry a status; a message (Python's sys.exit("...")) means status 1
        if isinstance(exc.code, int) or exc.code is None:
            return exc.code or 0
        print(f"error: {exc.code}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print("\ninterrupted" + (f": {exc}" if str(exc) else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _closed_pipe() -> int:
    """Standard output was closed by its reader (`| head -3`): stop without a word, and let
    the interpreter's last flush of it go nowhere instead of failing again."""
    with contextlib.suppress(OSError, ValueError):  # stdout may be no file at all (captured in tests)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_CLOSED_PIPE


def _command(args: argparse.Namespace):
    """The function `args.command` names (`module.function` in this package), imported now."""
    module, function = args.command.rsplit(".", 1)
    return getattr(importlib.import_module(f".{module}", __name__), function)

