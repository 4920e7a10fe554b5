"""The root of every error icldsl reports to its user, and the exit statuses of the command line.

Each user-facing error class derives from `Error` and carries the exit status the
`icldsl` command ends with when it stops on one (the README's table), so the command
line catches one class and library users can too (`except icldsl.Error`).
"""

from __future__ import annotations

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_BUSY = 75  # the output is being written by another run (sysexits.h's EX_TEMPFAIL: try again later)
EXIT_CLOSED_PIPE = 141  # standard output closed early (`icldsl eval ... | head -3`), as a shell reports SIGPIPE


class Error(Exception):
    """Something the user can fix, said with what is wrong and where."""

    exit_code: int = EXIT_INPUT
