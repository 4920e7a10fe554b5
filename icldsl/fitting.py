"""`icldsl.fit`: train a file's program and write its artifact; `icldsl fit` runs this code.

The steps: check the signing key (before any work), compile, pick the train block, resume
from a checkpoint left beside the artifact, fit (`training.session.fit_compiled`), refuse
to write an artifact trained on calls that were never made (offline) or whose test
predictions mostly failed, write the artifact (a fit interrupted at any moment before
leaves none), and then, as decoration that can fail without losing the training, the
plots and report (docs/language/train.md, "Files beside the artifact").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from . import artifact, drawing
from .language.compiler import compile_file
from .errors import Error
from .lm.base import LMClient
from .lm.cache import LMCache, Mode
from .lm.trace import Tracer
from .paths import beside
from .language.specs import Compiled
from .training.session import (MAX_FAILED_SHARE, FitFailed, FitReport, Scores, failed_predictions, failure_message,
                               fit_compiled, train_block)
from .training.trainer import Progress

log = logging.getLogger(__name__)


class CallsMissing(Error):
    """An offline fit or evaluation met calls the cache does not hold."""


def missing_message(n: int) -> str:
    return (f"{n} LM call{'s were' if n != 1 else ' was'} missing from the cache and --offline forbids making "
            f"{'them' if n != 1 else 'it'}; {'their predictions count' if n != 1 else 'its prediction counts'} "
            "as failed. Run without --offline to make them")


@dataclass(frozen=True, slots=True)
class Fitted:
    """What `fit` made: the training's report (scores untrained and trained, history,
    usage), the artifact as written (signed when asked) and the files written beside it."""

    report: FitReport
    artifact: dict
    path: Path | None  # None with write=False
    files: tuple[Path, ...]  # the plots, then report.html; none with report=False or write=False
    signed: bool
    note: str | None = None  # why no plots or report were drawn although asked for (no matplotlib)

    @property
    def untrained(self) -> Scores:
        return self.report.untrained

    @property
    def trained(self) -> Scores:
        return self.report.trained


async def afit(source: str | Path | Compiled, *, program: str | None = None, output: str | Path | None = None,
               cache: LMCache | None = None, cache_mode: Mode = "normal", sign: bool | str | bytes = False,
               report: bool = True, restart: bool = False, progress: Progress | None = None,
               tracers: Sequence[Tracer] | None = None, clients: dict[str, LMClient] | None = None,
               on_trained: Callable[[FitReport], None] | None = None, write: bool = True) -> Fitted:
    """Fit the train block of `program` (or the file's first) in `source` (a `.icl` path or
    a compiled file) and write `<program>.artifact.json` (or `output`).

    `cache` answers LM calls in `cache_mode` (`LMCache()`: the shared cache; None: no
    cache); `sign` signs with the key given, or with $ICLDSL_SIGNING_KEY when True;
    `report` writes the plots and report.html; `restart` ignores a checkpoint; `tracers`
    receive every LM call (`icldsl.lm.trace`); `clients` stand in for LMs (tests);
    `on_trained` sees the report once the artifact is written (or before the fit refuses
    to write one, raising), before the plots are drawn; `write=False`
    writes no file at all (no checkpoint, history, report or artifact: the caller takes
    `Fitted.artifact`, as `icldsl fit -o -` does). Raises an
    `icldsl.Error` (CheckError, CallsMissing, FitFailed, ...) when the fit cannot give an
    artifact; then none is written.
    """
    job = _Job(source, program, output, sign, restart, write)
    fitted = await fit_compiled(job.compiled, job.train, clients=clients, cache=cache, cache_mode=cache_mode,
                                progress=progress, checkpoint=job.checkpoint, csv_log=job.csv_log, tracers=tracers)
    return job.finish(fitted, report, on_trained)


def fit(source: str | Path | Compiled, *, program: str | None = None, output: str | Path | None = None,
        cache: LMCache | None = None, cache_mode: Mode = "normal", sign: bool | str | bytes = False,
        report: bool = True, restart: bool = False, progress: Progress | None = None,
        tracers: Sequence[Tracer] | None = None, clients: dict[str, LMClient] | None = None,
        on_trained: Callable[[FitReport], None] | None = None, write: bool = True) -> Fitted:
    """`afit` on an event loop of its own (from async code, await `afit`). The artifact is
    written once the loop has ended, where a Ctrl-C during the write can be held back
    (asyncio's loop handles SIGINT itself while it runs)."""
    job = _Job(source, program, output, sign, restart, write)
    fitted = asyncio.run(fit_compiled(job.compiled, job.train, clients=clients, cache=cache, cache_mode=cache_mode,
                                      progress=progress, checkpoint=job.checkpoint, csv_log=job.csv_log,
                                      tracers=tracers))
    return job.finish(fitted, report, on_trained)


class _Job:
    """One fit's inputs resolved before any LM call: the signing key (a missing one stops
    the fit now), the compiled file, its train block, and where the artifact and its
    checkpoint go (a `restart` removes the checkpoint; without `write`, nowhere)."""

    def __init__(self, source: str | Path | Compiled, program: str | None, output: str | Path | None,
                 sign: bool | str | bytes, restart: bool, write: bool) -> None:
        self.key = artifact.signing_key(None if sign is True else sign) if sign is not False else None
        self.compiled = source if isinstance(source, Compiled) else compile_file(source)
        self.train = train_block(self.compiled, program)
        self.out = Path(output or f"{self.train.program}.artifact.json") if write else None
        self.checkpoint = beside(self.out, "checkpoint.json") if self.out else None
        self.csv_log = beside(self.out, "history.csv") if self.out else None
        if restart and self.checkpoint:
            self.checkpoint.unlink(missing_ok=True)

    def finish(self, fitted: FitReport, report: bool, on_trained: Callable[[FitReport], None] | None) -> Fitted:
        """Refuse, or write the artifact and then show the training (`on_trained`) and draw
        the plots and report: nothing decorative comes before the artifact, so a summary
        that cannot be printed (standard output closed) loses no training either."""
        refusal = _refusal(fitted)
        if refusal is not None:
            if on_trained is not None:
                on_trained(fitted)
            raise refusal
        doc = artifact.sign(fitted.artifact, self.key) if self.key else fitted.artifact
        if self.out is not None:
            with _finishing():
                artifact.write(self.out, doc)
                self.checkpoint.unlink(missing_ok=True)  # type: ignore[union-attr]  # set with out
        if on_trained is not None:
            on_trained(fitted)
        if self.out is None:
            return Fitted(fitted, doc, None, (), self.key is not None)
        if report and not drawing.available():
            return Fitted(fitted, doc, self.out, (), self.key is not None,
                          drawing.missing_note("no plots or report.html"))
        files = _draw(self.out, fitted, doc) if report else ()
        return Fitted(fitted, doc, self.out, files, self.key is not None)


def _refusal(fitted: FitReport) -> Error | None:
    """Why no artifact may be written: neither one trained on calls that were never made, nor
    one whose scores are mostly failures, may replace a good one."""
    if fitted.usage.missing:
        return CallsMissing(f"{missing_message(fitted.usage.missing)}; no artifact written")
    failed, total, error, count = failed_predictions(fitted.untrained, fitted.trained)
    if failed > MAX_FAILED_SHARE * total:
        return FitFailed(f"{failure_message(failed, total, error, count, 'test predictions')}; more than "
                         f"{MAX_FAILED_SHARE:.0%} failed, so no artifact was written")
    return None


def _draw(out: Path, fitted: FitReport, doc: dict) -> tuple[Path, ...]:
    """The plots and report.html beside the written artifact. Drawing is decoration: when
    it fails (a disk that is full, a figure matplotlib refuses), the fit logs one line and
    keeps its artifact; `icldsl plot ARTIFACT --report` draws them again."""
    scored = [s.runs[-1].scored if s.runs else () for s in (fitted.untrained, fitted.trained)]
    validation = fitted.history.validation.scored if fitted.history.validation else ()
    try:
        from . import report as html_report  # matplotlib loads only when plots are drawn

        return tuple(html_report.write_beside(out, doc,
                                              predictions=html_report.predictions_of(*scored, validation)))
    except DRAWING_FAILURES as exc:
        log.warning("the plots and report beside %s were not drawn (%s: %s); the artifact is written, and "
                    "`icldsl plot %s --report` draws them", out, type(exc).__name__,
                    _clip(" ".join(str(exc).split()), 200), out)
        return ()


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# What drawing the plots and the report can fail with: ImportError (matplotlib missing),
# OSError (writing them), ValueError (matplotlib refusing a figure or a string),
# OverflowError and RuntimeError (the Agg renderer's limits), MemoryError. Anything else is
# a defect, raised after the artifact is written.
DRAWING_FAILURES = (ImportError, OSError, ValueError, OverflowError, RuntimeError, MemoryError)


@contextlib.contextmanager
def _finishing() -> Iterator[None]:
    """Writing the artifact and removing the checkpoint end the training; a Ctrl-C pressed
    during it is ignored, so the fit either wrote no artifact (interrupted before, exit 130)
    or wrote it and removed its checkpoint, never something between."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


__all__ = ["CallsMissing", "Fitted", "afit", "fit", "missing_message"]
