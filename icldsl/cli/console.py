"""What every verb shares: its error, printing to stderr and colour, diagnostics, reading
files or standard input (`-`), compiling a `.icl` file, loading an artifact, the LM cache
flags and `--lm` overrides."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings
from typing import BinaryIO, Sequence, TextIO

from .. import jsontext
from ..language.diagnostics import CheckError
from ..errors import EXIT_INPUT, Error
from ..language.source import Source


class Failure(Error):
    """A user-facing error: printed as `error: ...`, exit status 1."""


def err(text: str = "") -> None:
    print(text, file=sys.stderr)


def use_color(stream: TextIO) -> bool:
    """Whether to colour what goes to `stream`, decided as CPython 3.13 decides for its own
    output: no with $NO_COLOR set, else yes with $FORCE_COLOR set, else no when $TERM is
    `dumb`, else whether `stream` is a terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return os.environ.get("TERM") != "dumb" and stream.isatty()


# ---- files, and `-` for standard input -------------------------------------------

STDIN = "-"  # as a file name: standard input (or, for an output, standard output)
STDIN_NAME = "<stdin>"  # what messages call it


def stdin_once(**values: str | None) -> None:
    """Failure when more than one of the named arguments is `-`: standard input is read once."""
    named = [name for name, value in values.items() if value == STDIN]
    if len(named) > 1:
        raise Failure(f"standard input can be read only once, but {' and '.join(named)} are both -")


def read_source(path: str, stream: BinaryIO | None = None) -> Source:
    """A `.icl` file, or standard input for `-` (its imports are found from the working
    directory); `stream` is what standard input held, when it was read already."""
    try:
        if path == STDIN:
            return Source.from_stream(STDIN_NAME, stream or sys.stdin.buffer)
        return Source.from_path(path)
    except OSError as exc:
        raise Failure(f"cannot read {STDIN_NAME if path == STDIN else path}: {exc.strerror}") from None


def compile_or_exit(path: str, stream: BinaryIO | None = None, *, data: bool = True):
    """The compiled file (see `read_source`), its warnings printed; its errors printed and exit status 1.
    Its data files are opened when the verb reads the data (`data`)."""
    from ..datafiles import check_data_files
    from ..language.compiler import compile_source

    source = read_source(path, stream)
    try:
        compiled = compile_source(source, checks=(check_data_files,) if data else ())
    except CheckError as exc:
        print_diagnostics(exc.diagnostics, source, exc.sources, "full")
        raise SystemExit(EXIT_INPUT) from None
    print_diagnostics(compiled.warnings, source, compiled.sources, "full")
    return compiled


def print_diagnostics(diagnostics, source: Source, sources, fmt: str) -> None:
    """The diagnostics to standard error as `icldsl.check`'s `Checked.render` writes them, then
    the count of errors when there are any."""
    from ..compiling import Checked  # with the compiler: only when there is something to print

    checked = Checked.of(source, diagnostics, sources)
    sys.stderr.write(checked.render(concise=fmt == "concise", color=use_color(sys.stderr)))
    errors = len(checked.errors)
    if errors:
        err(f"{source.name}: {errors} error{'s' if errors != 1 else ''}, not compiled")


def json_object(text: str, what: str) -> dict:
    try:
        value = jsontext.loads(text)
    except jsontext.JSONTextError as exc:
        raise Failure(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Failure(f"{what} must be a JSON object, for example '{{\"question\": \"...\"}}'")
    return value


# ---- artifacts -------------------------------------------------------------------


def read_artifact(path: str) -> dict:
    """`artifact.read` of a file, or of standard input for `-`."""
    from .. import artifact

    return artifact.read(STDIN_NAME, sys.stdin.buffer) if path == STDIN else artifact.read(path)


def source_given(path: str) -> str | bool:
    """What `artifact.load`'s `check_source` is for a verb given the `.icl` FILE `path`
    (`render`, `eval`): that file, when the artifact was trained from it; stdin, nothing."""
    return False if path == STDIN else path


def load_artifact(path: str, **options):
    """`artifact.load` of a file, or of standard input for `-`; a stale artifact (its source
    changed since `fit`, when `load` was asked to look) is reported as a `warning: ...` line,
    other warnings as Python shows them."""
    from .. import artifact

    if path == STDIN:
        path, options = STDIN_NAME, {**options, "stream": sys.stdin.buffer}

    with warnings.catch_warnings():
        warnings.simplefilter("always", artifact.StaleArtifactWarning)
        default = warnings.showwarning

        def show(message, category, *rest) -> None:
            if issubclass(category, artifact.StaleArtifactWarning):
                err(f"warning: {message}")
            else:
                default(message, category, *rest)

        warnings.showwarning = show
        return artifact.load(path, **options)


def lm_overrides(items: Sequence[str]) -> dict[str, dict]:
    """`--lm NAME.OPTION=VALUE` flags as `artifact.with_lms` takes them: `env:VAR` reads a
    variable, `null` removes the option, a JSON number or boolean is one, anything else text."""
    overrides: dict[str, dict] = {}
    for item in items:
        name, dot, rest = item.partition(".")
        option, equals, value = rest.partition("=")
        if not (dot and equals and name and option):
            raise Failure(f"--lm {item!r}: write NAME.OPTION=VALUE, such as solver.base_url=https://host/v1 "
                          "or solver.api_key=env:MY_KEY")
        if value.startswith("env:"):
            parsed: object = {"env": value.removeprefix("env:")}
        else:
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                parsed = value
            if not (parsed is None or isinstance(parsed, (bool, int, float))):
                parsed = value
        overrides.setdefault(name, {})[option] = parsed
    return overrides


# ---- the LM cache and the trace ---------------------------------------------------


@contextlib.contextmanager
def lm_cache(args: argparse.Namespace):
    """The cache the flags ask for, closed afterwards; on Ctrl-C, says how to resume."""
    from ..lm.cache import LMCache, default_path

    if args.no_cache:
        yield None, "off"
        return
    cache = LMCache(default_path())
    try:
        yield cache, "offline" if args.offline else "normal"
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"the LM calls that finished are in the cache ({cache.path}); "
                                "run the same command again to resume") from None
    finally:
        cache.close()


@contextlib.contextmanager
def tracing(args: argparse.Namespace):
    """The tracers `--trace FILE` asks for (its JSON lines, and OpenTelemetry's spans when
    that is installed), the file closed afterwards; None (the default tracers) without it."""
    if not getattr(args, "trace", None):
        yield None
        return
    from ..lm.connect import default_tracers
    from ..lm.trace import JSONLTrace

    try:
        trace = JSONLTrace(args.trace)
    except OSError as exc:
        raise Failure(f"cannot write the trace to {args.trace}: {exc.strerror}") from None
    try:
        yield (trace, *default_tracers())
    finally:
        trace.close()
