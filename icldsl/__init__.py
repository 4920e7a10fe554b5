"""icldsl: declare LM programs in `.icl` files, train their prompts, ship a frozen artifact.

The data path, each stage a public function:
`parse` -> `check` -> `compile_source` -> `Program` -> `fit` (writes the artifact) -> `load`.

The names below are imported when first used, so importing the package is instant: the
`icldsl` command starts handling Ctrl-C before the heavy modules load.
"""

from __future__ import annotations

from .errors import Error
from .lazy import exports

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    "ArtifactError": "artifact", "load": "artifact", "check": "language.checker", "compile_file": "language.compiler",
    "compile_source": "language.compiler", "CheckError": "language.diagnostics", "parse": "language.parser", "parse_file": "language.parser",
    "InvalidInput": "runtime.program", "PredictionError": "runtime.program", "Program": "runtime.program",
    "Source": "language.source", "fit": "fitting", "afit": "fitting", "Fitted": "fitting",
}

__all__ = ["Error", *sorted(_EXPORTS)]


__getattr__, __dir__ = exports(__name__, _EXPORTS)
