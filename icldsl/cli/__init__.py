"""The `icldsl` command: the only package that prints or exits.

Exit codes (icldsl/errors.py): 0 success; 1 the input is wrong (diagnostics, bad
data, bad artifact, unusable LM settings, a failed prediction); 2 bad command-line
usage; 130 interrupted. Every error a user can fix derives from `icldsl.Error`.

`arguments` holds the command line; the verbs live by job in `checking`, `training`,
`running`, `artifacts` and `cache`, sharing `console` (errors, diagnostics, files),
`progress` and `tables`. A verb's module is imported only when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from ..errors import EXIT_INTERRUPTED, Error
from .arguments import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # --help and bad usage exit (SystemExit) from here
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
        return _command(args)(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt as exc:
        print("\ninterrupted" + (f": {exc}" if str(exc) else ""), file=sys.stderr)
        return EXIT_INTERRUPTED
    except Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


def _command(args: argparse.Namespace):
    """The function `args.command` names (`module.function` in this package), imported now."""
    module, function = args.command.rsplit(".", 1)
    return getattr(importlib.import_module(f".{module}", __name__), function)

