"""The root of every error icldsl reports to its user, and the exit statuses of the command line.

Each user-facing error class derives from `Error` and carries the exit status the
`icldsl` command ends with when it stops on one (`EXIT_STATUSES`), so the command
line catches one class and library users can too (`except icldsl.Error`).
"""

from __future__ import annotations

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BUSY = 75  # the output is being written by another run (sysexits.h's EX_TEMPFAIL: try again later)
EXIT_CLOSED_PIPE = 141  # standard output closed early (`icldsl eval ... | head -3`), as a shell reports SIGPIPE

# What each exit status means: `icldsl --help`'s epilog and the docs' command-line reference
# (docs/cli.md, written from the parser by cli/reference.py) both print this table.
EXIT_STATUSES = (
    (EXIT_OK, "success (warnings may have been printed)"),
    (EXIT_INPUT, "the input is wrong: errors in a .icl file, a bad data row, a tampered, unsigned (with "
                 "--verify) or unreadable artifact, unusable LM settings, a tool that cannot be imported, a "
                 "failed prediction in run, an --output of run that cannot be written (a missing folder, a "
                 "folder, a full disk), a fit whose test predictions mostly failed; fmt --check/--diff "
                 "found a file to reformat; diff: the artifacts differ"),
    (EXIT_USAGE, "bad command-line usage (diff: an artifact cannot be read)"),
    (EXIT_BUSY, "run: another icldsl run is writing the same --output (try again when it ends)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C at any moment, with a line saying so and no traceback; in Python's "
                       "own start-up, its first 10 ms or so, Python reports it itself); finished LM calls are "
                       "kept in the cache"),
    (EXIT_CLOSED_PIPE, "standard output was closed before the command finished writing (| head), as a shell "
                       "reports a process ended by SIGPIPE"),
)


class Error(Exception):
    """Something the user can fix, said with what is wrong and where."""

    exit_code: int = EXIT_INPUT
