"""`python -m icldsl` is the `icldsl` command."""

import sys

from .cli import main

sys.exit(main())
