"""icldsl: declare LM programs in `.icl` files, train their prompts, ship a frozen artifact.

The data path, each stage a public function:
`parse` -> `check` -> `compile_source` -> `Program` -> `fit` -> `artifact.write` -> `load`.
"""

from .artifact import ArtifactError, load
from .checker import check
from .compiler import compile_file, compile_source
from .diagnostics import CheckError
from .errors import Error
from .parser import parse, parse_file
from .runtime.program import InvalidInput, PredictionError, Program
from .source import Source

__version__ = "0.1.0"

__all__ = [
    "ArtifactError", "CheckError", "Error", "InvalidInput", "PredictionError", "Program", "Source",
    "check", "compile_file", "compile_source", "load", "parse", "parse_file",
]
