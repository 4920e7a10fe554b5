"""`python -m icldsl` and the `icldsl` command.

Loading the library takes a moment; a Ctrl-C during it ends the command as one at any
other moment does (exit status 130, no traceback), since only this module is loaded yet.
"""

import sys

from .errors import EXIT_INTERRUPTED


def main() -> int:
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return run()


if __name__ == "__main__":
    sys.exit(main())
