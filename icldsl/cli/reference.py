"""The command-line reference page (docs/cli.md), written from the argparse parser.

Every verb, its usage, its description and a table of its arguments, then the exit
statuses (`errors.EXIT_STATUSES`), so a flag added to `arguments` reaches the docs by
running `python -m icldsl.cli.reference docs/cli.md`; tests/test_docs.py fails while the
page differs from what this prints.
"""

from __future__ import annotations

import argparse
import sys

from ..errors import EXIT_STATUSES
from .arguments import build_parser

HEADER = """# Command-line reference

<!-- Written by `python -m icldsl.cli.reference docs/cli.md` from icldsl/cli/arguments.py; do not edit. -->

Every verb also takes `-h`/`--help`, `-v`/`--verbose` (log what the library does),
`-q`/`--quiet` (print less: no progress, no `ok` or `reformatted` lines; diagnostics, results
and errors are still printed), each before or after the verb, and `--version`. A misspelled
verb gets a suggestion (`icldsl chek` -> did you mean `check`?). How the verbs behave together (standard input and output,
colour, progress, the LM cache flags, traces, the files `fit` writes) is in
[Using the command line](commands.md).
"""


def _text(text: str) -> str:
    """Help text as Markdown shows it: `<stem>` is not an HTML tag."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|").replace("\n", " ")


def _usage(parser: argparse.ArgumentParser) -> str:
    """The parser's usage on one line, whatever the terminal's width."""
    formatter = argparse.HelpFormatter(parser.prog, width=10_000)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip().removeprefix("usage: ")


def _argument(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    value = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
    return ", ".join(f"`{flag}{value}`" for flag in action.option_strings)


def _help(action: argparse.Action) -> str:
    text = action.help or ""
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        choices = ", ".join(f"`{choice}`" for choice in action.choices)
        if choices not in text and not all(str(c) in text for c in action.choices):
            text += f" (one of {choices})"
    return _cell(text)


def _verb(parser: argparse.ArgumentParser, level: int) -> list[str]:
    lines = [f"{'#' * level} `{parser.prog}`", "", "```", _usage(parser), "```", ""]
    if parser.description:
        lines += [_text(parser.description), ""]
    own = [a for a in parser._actions
           if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))
           and a.dest not in ("verbose", "quiet")]
    if own:
        lines += ["| argument | meaning |", "|---|---|"]
        lines += [f"| {_argument(action)} | {_help(action)} |" for action in own]
        lines.append("")
    for sub in _subparsers(parser):
        lines += _verb(sub, level + 1)
    return lines


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(dict.fromkeys(action.choices.values()))  # aliases would repeat a parser
    return []


def markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The reference page for `parser` (by default the `icldsl` command's)."""
    parser = parser or build_parser()
    lines = [HEADER]
    for sub in _subparsers(parser):
        lines += _verb(sub, 2)
    lines += ["## Exit status", "", "| status | meaning |", "|---|---|"]
    lines += [f"| {status} | {_cell(meaning)} |" for status, meaning in EXIT_STATUSES]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    """Write the page to the path given, or print it."""
    command = argparse.ArgumentParser(prog="python -m icldsl.cli.reference",
                                      description="Write the command-line reference page.")
    command.add_argument("path", nargs="?", help="where to write it (docs/cli.md); else standard output")
    path = command.parse_args(argv).path
    text = markdown()
    if path:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
