"""icldsl: declare LM programs in `.icl` files, train their prompts, ship a frozen artifact.

The public API is `__all__`, and nothing else (docs/python-api.md):
`check` a file as `icldsl check` does, `compile` one of its programs (untrained), `fit`
(or `afit`) its train block into an artifact, `load` the artifact as a `Program`, and the
errors they raise, all under `Error`. `LMCache`, `JSONLTrace` and `OTelTrace` go into the
`cache=` and `tracers=` of those functions. Two submodules are public as well: `icldsl.ray`
(`icldsl.ray.predict`, with the `ray` extra) and `icldsl.tools` (functions `.icl` files name,
`python("icldsl.tools:calculator")`). Every other module and name is internal: it may
change in any release, and nothing outside this package should import it.

The names below are imported when first used, so importing the package is instant: the
`icldsl` command starts handling Ctrl-C before the heavy modules load.
"""

from __future__ import annotations

from .errors import Error
from .lazy import exports

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS = {
    # a .icl file: checked, compiled, trained
    "check": "compiling", "Checked": "compiling", "Diagnostic": "language.diagnostics", "compile": "compiling",
    "fit": "fitting", "afit": "fitting", "Fitted": "fitting",
    # an artifact, loaded and called
    "load": "artifact", "Program": "runtime.program", "Prediction": "runtime.program",
    # what the functions above take
    "LMCache": "lm.cache", "JSONLTrace": "lm.trace", "OTelTrace": "lm.trace",
    # what they raise (all but the warning under `Error`)
    "CheckError": "language.diagnostics", "NoProgram": "compiling", "NoTrainBlock": "training.session",
    "DataError": "datasets.base", "LMConfigError": "lm.base", "CallsMissing": "fitting",
    "FitFailed": "training.session", "ArtifactError": "artifact", "StaleArtifactWarning": "artifact",
    "InvalidInput": "runtime.program", "PredictionError": "runtime.program", "ToolError": "runtime.tools",
    "CacheError": "lm.cache",
}

__all__ = ["Error", *sorted(_EXPORTS)]


__getattr__, __dir__ = exports(__name__, _EXPORTS)
