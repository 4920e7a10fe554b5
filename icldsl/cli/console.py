"""What every verb shares: its error, printing to stderr, diagnostics, reading and
compiling a `.icl` file, loading an artifact, the LM cache flags and `--lm` overrides."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from typing import Iterator, Sequence

from .. import jsontext
from ..diagnostics import CheckError, render, render_concise, sort_key
from ..errors import EXIT_INPUT, Error
from ..source import Source


class Failure(Error):
    """A user-facing error: printed as `error: ...`, exit status 1."""


def err(text: str = "") -> None:
    print(text, file=sys.stderr)


# ---- compile with diagnostics ----------------------------------------------------


def read_source(path: str) -> Source:
    try:
        return Source.from_path(path)
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror}") from None


def compile_or_exit(path: str):
    """The compiled file, its warnings printed; its errors printed and exit status 1."""
    from ..compiler import compile_source

    source = read_source(path)
    try:
        compiled = compile_source(source)
    except CheckError as exc:
        print_diagnostics(exc.diagnostics, source, exc.sources, "full")
        raise SystemExit(EXIT_INPUT) from None
    print_diagnostics(compiled.warnings, source, compiled.sources, "full")
    return compiled


def print_diagnostics(diagnostics, source: Source, sources, fmt: str) -> None:
    color = sys.stderr.isatty()
    sources = {source.name: source, **sources}
    for d in sorted(diagnostics, key=sort_key):
        err(render_concise(d) if fmt == "concise" else render(d, sources, color=color) + "\n")
    errors = sum(d.severity == "error" for d in diagnostics)
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


def load_artifact(path: str, **options):
    """`artifact.load`, a stale artifact (its source changed since `fit`) reported as a
    `warning: ...` line; other warnings are shown as Python shows them."""
    from .. import artifact

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
