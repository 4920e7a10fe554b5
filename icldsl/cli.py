"""The `icldsl` command: the only module that prints or exits.

Exit codes (icldsl/errors.py): 0 success; 1 the input is wrong (diagnostics, bad
data, bad artifact, unusable LM settings, a failed prediction); 2 bad command-line
usage; 130 interrupted. Every error a user can fix derives from `icldsl.Error`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import json
import logging
import shutil
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from . import artifact, jsontext, predict
from .compiler import compile_source
from .specs import Compiled
from .diff import diff_docs, format_diff
from .diagnostics import JSON_VERSION, CheckError, render, render_concise, render_github, sort_key, to_json
from .errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, Error
from .lm.cache import ENV_DIR, LMCache, Mode, default_path
from .runtime.models import dump
from .formatter import format_source
from .plan import format_plan, plan_compiled
from .runtime.render import render_program
from .source import Source
from .paths import beside
from .training.estimate import Estimate, paired
from .training.metrics import label_summary
from .training.session import (MAX_FAILED_SHARE, Scores, eval_compiled, failed_predictions, failure_message,
                               fit_compiled, program_of)
from .training.history import History
from .training.usage import UsageTable

class Failure(Error):
    """A user-facing error: printed as `error: ...`, exit status 1."""


def _err(text: str = "") -> None:
    print(text, file=sys.stderr)


@contextlib.contextmanager
def _stale_artifact_warnings() -> Iterator[None]:
    """A stale artifact (its source changed since `fit`) is reported as a `warning: ...` line;
    other warnings are shown as Python shows them."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", artifact.StaleArtifactWarning)
        default = warnings.showwarning

        def show(message, category, *rest) -> None:
            if issubclass(category, artifact.StaleArtifactWarning):
                _err(f"warning: {message}")
            else:
                default(message, category, *rest)

        warnings.showwarning = show
        yield


# ---- compile with diagnostics ----------------------------------------------------


def _read(path: str) -> Source:
    try:
        return Source.from_path(path)
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror}") from None


def _compile(path: str) -> Compiled:
    source = _read(path)
    try:
        compiled = compile_source(source)
    except CheckError as exc:
        _print_diagnostics(exc.diagnostics, source, exc.sources, "full")
        raise SystemExit(EXIT_INPUT) from None
    _print_diagnostics(compiled.warnings, source, compiled.sources, "full")
    return compiled


def _print_diagnostics(diagnostics, source: Source, sources, fmt: str) -> None:
    color = sys.stderr.isatty()
    sources = {source.name: source, **sources}
    for d in sorted(diagnostics, key=sort_key):
        _err(render_concise(d) if fmt == "concise" else render(d, sources, color=color) + "\n")
    errors = sum(d.severity == "error" for d in diagnostics)
    if errors:
        _err(f"{source.name}: {errors} error{'s' if errors != 1 else ''}, not compiled")


# ---- progress --------------------------------------------------------------------


class ProgressLine:
    """A bar per evaluation and per epoch: counts, percent, running reward, rate, time
    left and cache hits. On a terminal it is redrawn in place (at most 10 times a second);
    otherwise only the finished line of each pass is printed; nothing with --quiet."""

    WIDTH = 24

    def __init__(self, quiet: bool, *, stream=None) -> None:
        self.quiet = quiet
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started: dict[str, float] = {}
        self.drawn = 0.0

    def __call__(self, label: str, done: int, total: int, reward: float, *, cache_hits: int = 0) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        start = self.started.setdefault(label, now)
        finished = done >= total
        if self.tty and not finished and done and now - self.drawn < 0.1:
            return
        if not self.tty and not finished:
            return
        self.drawn = now
        self.draw(self.line(label, done, total, reward, now - start, cache_hits), finished)

    def draw(self, text: str, finished: bool) -> None:
        """Show `text`: in place on a terminal (ending the line when `finished`), else as a line."""
        if self.tty:
            columns = shutil.get_terminal_size((100, 20)).columns
            self.stream.write("\r\x1b[2K" + text[: columns - 1] + ("\n" if finished else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    @classmethod
    def line(cls, label: str, done: int, total: int, reward: float, elapsed: float, cache_hits: int = 0) -> str:
        """`label [#####-----] done/total pct reward r rate ex/s elapsed ~left cache hits`."""
        fraction = done / total if total else 1.0
        filled = round(cls.WIDTH * fraction)
        rate = done / elapsed if done and elapsed > 0 else 0.0
        parts = [f"{label:<20} [{'█' * filled}{'░' * (cls.WIDTH - filled)}] {done:>{len(str(total))}}/{total}"
                 f" {fraction:4.0%}", f"reward {reward:.3f}"]
        if rate:
            parts.append(f"{rate:.1f} ex/s")
        parts.append(_duration(elapsed))
        if rate and done < total:
            parts.append(f"~{_duration((total - done) / rate)} left")
        if cache_hits:
            parts.append(f"cache {cache_hits} hit{'s' if cache_hits != 1 else ''}")
        return "  ".join(parts)


class RunProgress(ProgressLine):
    """`run`'s bar over a file of rows: rows written of those to run, failures, rate and
    time left (without a total, as from stdin: the count and rate). Redrawn in place on a
    terminal; otherwise a line every 10 seconds and the last one."""

    EVERY = 10.0  # seconds between lines off a terminal

    def __init__(self, quiet: bool, total: int | None, *, stream=None) -> None:
        super().__init__(quiet, stream=stream)
        self.total = total
        self.start = self.drawn = time.monotonic()

    def update(self, done: int, failed: int, *, finished: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not finished and now - self.drawn < (0.1 if self.tty else self.EVERY):
            return
        self.drawn = now
        self.draw(self.run_line(done, self.total, failed, now - self.start), finished)

    @classmethod
    def run_line(cls, done: int, total: int | None, failed: int, elapsed: float) -> str:
        """`run [#####-----] done/total pct rate rows/s elapsed ~left failed`."""
        rate = done / elapsed if done and elapsed > 0 else 0.0
        if total:
            fraction = min(done / total, 1.0)
            filled = round(cls.WIDTH * fraction)
            parts = [f"run [{'█' * filled}{'░' * (cls.WIDTH - filled)}] {done:>{len(str(total))}}/{total} "
                     f"{fraction:4.0%}"]
        else:
            parts = [f"run {done} rows"]
        if rate:
            parts.append(f"{rate:.0f} rows/s")
        parts.append(_duration(elapsed))
        if rate and total and done < total:
            parts.append(f"~{_duration((total - done) / rate)} left")
        if failed:
            parts.append(f"{failed} failed")
        return "  ".join(parts)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# ---- verbs -----------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    """Every file is checked, even after one with errors; exit 1 when any had an error."""
    sources = [_read(path) for path in args.files]
    checked = []  # (source, its diagnostics, the sources they point into)
    for source in sources:
        try:
            compiled = compile_source(source)
            checked.append((source, compiled.warnings, compiled.sources))
        except CheckError as exc:
            checked.append((source, exc.diagnostics, exc.sources))
    failed = any(d.severity == "error" for _, diagnostics, _ in checked for d in diagnostics)
    if args.format == "json":
        files = []
        for source, diagnostics, found in checked:
            found = {source.name: source, **found}
            errors = sum(d.severity == "error" for d in diagnostics)
            files.append({"file": source.name, "ok": not errors, "errors": errors,
                          "warnings": len(diagnostics) - errors,
                          "diagnostics": [to_json(d, found) for d in sorted(diagnostics, key=sort_key)]})
        print(json.dumps({"version": JSON_VERSION, "ok": not failed, "files": files}, ensure_ascii=False, indent=2))
        return EXIT_INPUT if failed else EXIT_OK
    for source, diagnostics, found in checked:
        if args.format == "github":
            for d in sorted(diagnostics, key=sort_key):
                print(render_github(d, {source.name: source, **found}))
        else:
            _print_diagnostics(diagnostics, source, found, args.format)
        if not any(d.severity == "error" for d in diagnostics):
            _err(f"{source.name}: ok")
    return EXIT_INPUT if failed else EXIT_OK


def _train_spec(compiled: Compiled, program: str | None):
    try:
        return compiled.train(program)
    except KeyError:
        raise Failure(f"{compiled.source.name} has no train block" + (f" for program `{program}`" if program else "")
                      + "; fit and eval need one (see programs/gsm8k.icl)") from None


def _scores_table(rows: list[tuple[str, Scores]]) -> str:
    """Reward (mean ± std over runs when there are several), metrics, failures, and the
    examples' standard error, one column per program."""
    header = f"{'':<12}" + "".join(f"{name:>20}" for name, _ in rows)

    def cell(values: list[float], digits: int = 3) -> str:
        mean = float(np.mean(values)) if values else 0.0
        return f"{mean:.{digits}f} ± {float(np.std(values)):.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"

    lines = [header, f"{'reward':<12}" + "".join(f"{cell([r.reward for r in s.runs]):>20}" for _, s in rows)]
    metric_runs = [s.metric_runs() for _, s in rows]
    keys = [k for k in (metric_runs[0][0] if metric_runs and metric_runs[0] else {})
            if k == "accuracy" or k.startswith("f1_")]
    for key in keys:
        lines.append(f"{key:<12}" + "".join(f"{cell([m[key] for m in runs]):>20}" for runs in metric_runs))
    lines.append(f"{'failures':<12}" + "".join(f"{sum(r.failures for r in s.runs):>20}" for _, s in rows))
    spread = [Estimate.of([x.reward for x in s.runs[-1].scored]) if s.runs else Estimate.of([]) for _, s in rows]
    lines.append(f"{'std. error':<12}" + "".join(f"{f'± {e.stderr:.3f} (n={e.n})':>20}" for e in spread))
    return "\n".join(lines)


def _labels_table(rows: list[tuple[str, Scores]]) -> str | None:
    """Precision / recall / F1 of every label of the output's enum fields (means over runs),
    one column per program; None when the output has no enum field."""
    summaries = [label_summary(s.label_tables()) for _, s in rows]
    if not summaries or not summaries[0]:
        return None
    lines = [f"{'per label':<24}" + "".join(f"{name + ' P / R / F1':>26}" for name, _ in rows) + f"{'support':>9}"]
    for i, first in enumerate(summaries[0]):
        cells = "".join(f"{'{precision:.3f} / {recall:.3f} / {f1:.3f}'.format(**s[i]):>26}" for s in summaries)
        lines.append(f"{first['field'] + '=' + first['label']:<24}{cells}{first['support']:>9}")
    return "\n".join(lines)


def _difference(untrained: Scores, trained: Scores) -> str | None:
    """Trained minus untrained on the same test examples (the last run of each), with its standard error."""
    if not untrained.runs or not trained.runs:
        return None
    a, b = ([x.reward for x in s.runs[-1].scored] for s in (trained, untrained))
    diff = paired(a, b)
    verdict = "more than" if abs(diff.mean) > 2 * diff.stderr else "within"
    return (f"trained - untrained: {diff.mean:+.3f} ± {diff.stderr:.3f} (paired over {diff.n} examples; "
            f"{verdict} two standard errors)")


def _epoch_lines(history: History) -> list[str]:
    """One line per epoch: reward and quality metrics, training then validation."""
    shown = [k for k in history.history if k.removeprefix("val_") in ("reward", "accuracy")
             or k.removeprefix("val_").startswith("f1_")]
    lines = []
    for epoch in range(history.epochs_run):
        logs = "  ".join(f"{k} {history.history[k][epoch]:.3f}" for k in shown if epoch < len(history.history[k]))
        lines.append(f"  epoch {epoch + 1}: {logs}")
    return lines


def _event_lines(events: list[dict]) -> list[str]:
    """One line per comparison an optimizer made: the best candidate against the current
    states on the same examples, and whether the program switched."""
    lines = []
    for event in events:
        diff = event.get("difference")
        if diff is None:
            if event.get("reason"):
                lines.append(f"  epoch {event['epoch']} {event['optimizer']}: {event['reason']}")
            continue
        kept = event.get("kept")
        switched = kept if isinstance(kept, bool) else kept != event.get("incumbent")
        lines.append(f"  epoch {event['epoch']} {event['optimizer']}: best candidate {diff['mean']:+.3f} "
                     f"± {diff['stderr']:.3f} against the current states (paired, n={diff['n']}): "
                     + ("switched" if switched else "kept the current states"))
    if events:
        lines.append("  (every comparison is in the artifact: training.optimizer_events)")
    return lines


def cmd_fit(args: argparse.Namespace) -> int:
    key = artifact.signing_key() if args.sign else None  # before any work: a missing key stops the fit now
    compiled = _compile(args.file)
    train = _train_spec(compiled, args.program)
    out = Path(args.output or f"{train.program}.artifact.json")
    checkpoint = beside(out, "checkpoint.json")
    if args.restart:
        checkpoint.unlink(missing_ok=True)
    started = time.monotonic()
    with _lm_cache(args) as (cache, mode):
        report = asyncio.run(fit_compiled(compiled, train, cache=cache, cache_mode=mode,
                                          progress=ProgressLine(args.quiet), checkpoint=checkpoint,
                                          csv_log=beside(out, "history.csv")))
    missing = report.usage.missing
    history = report.history
    print(f"\n{train.program}: {report.sizes['train']} train, {report.sizes['validation']} validation, "
          f"{report.sizes['test']} test examples; {history.epochs_run} of {train.epochs} epoch(s) in "
          f"{_duration(time.monotonic() - started)}")
    for line in _epoch_lines(history):
        print(line)
    if history.stopped:
        print(f"  stopped: {history.stopped}")
    kept = history.best_epoch
    print(f"  kept: {'epoch ' + str(kept) if kept else 'the untrained program (no epoch beat it on ' + train.monitor + ')'}")
    for line in _event_lines(history.events):
        print(line)
    print("\ntest set" + ("" if train.runs == 1 else f" ({train.runs} runs, mean ± std over runs)"))
    print(_scores_table([("untrained", report.untrained), ("trained", report.trained)]))
    labels = _labels_table([("untrained", report.untrained), ("trained", report.trained)])
    if labels:
        print(labels)
    difference = _difference(report.untrained, report.trained)
    if difference:
        print(difference)
    print("\n" + _usage_table(report.usage_table))
    # Neither an artifact trained on calls that were never made, nor one whose scores are
    # mostly failures, may replace a good one.
    if missing:
        _err(f"\nerror: {_missing(missing)}; no artifact written")
        return EXIT_INPUT
    failed, total, error, count = failed_predictions(report.untrained, report.trained)
    if failed > MAX_FAILED_SHARE * total:
        _err(f"\nerror: {failure_message(failed, total, error, count, 'test predictions')}; more than "
             f"{MAX_FAILED_SHARE:.0%} failed, so no artifact was written")
        return EXIT_INPUT
    doc = artifact.sign(report.artifact, key) if key else report.artifact
    if not args.no_report:  # before the artifact: a fit interrupted while drawing leaves none, as documented
        from . import report as html_report  # matplotlib loads only when plots are drawn

        scored = [s.runs[-1].scored if s.runs else () for s in (report.untrained, report.trained)]
        validation = report.history.validation.scored if report.history.validation else ()
        predictions = html_report.predictions_of(*scored, validation)
        written = html_report.write_beside(out, doc, predictions=predictions)
        print(f"\nwrote {written[-1]} and {len(written) - 1} plots ({', '.join(p.name for p in written[:-1])})")
    with _finishing():
        artifact.write(out, doc)
        checkpoint.unlink(missing_ok=True)
    print(f"wrote {out}" + (" (signed)" if key else ""))
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    compiled = _compile(args.file)
    train = _train_spec(compiled, args.program)
    with _lm_cache(args) as (cache, mode):
        if args.artifact:
            program = artifact.load(args.artifact, cache=cache, cache_mode=mode, verify=args.verify,
                                    lms=_lm_overrides(args.lm))
            if program.spec.name != train.program:
                raise Failure(f"{args.artifact} holds program `{program.spec.name}`, not `{train.program}`")
            label = args.artifact
        else:
            program, label = program_of(compiled, train.program, cache=cache, cache_mode=mode), "untrained"
        scores = asyncio.run(eval_compiled(compiled, train, program, progress=ProgressLine(args.quiet)))
    print(_scores_table([(label if len(label) < 20 else "artifact", scores)]))
    labels = _labels_table([(label if len(label) < 20 else "artifact", scores)])
    if labels:
        print(labels)
    table = scores.usage_table
    print("\n" + _usage_table(table))
    if table.total.missing:
        _err(f"\nerror: {_missing(table.total.missing)}")
        return EXIT_INPUT
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    if args.input.lstrip().startswith("{"):
        return _run_one(args)
    with _lm_cache(args) as (cache, mode):
        program = artifact.load(args.artifact, cache=cache, cache_mode=mode, verify=args.verify,
                                lms=_lm_overrides(args.lm))
        fmt = predict.input_format(args.input, args.format)
        out = predict.PredictionsFile(args.output, stream=sys.stdout.buffer, retry_failed=args.retry_failed)
        try:
            if out.cut:
                _err(f"warning: cut a torn last line ({out.cut} bytes) off {args.output}")
            held = len(out.done) + len(out.failed)
            if held:
                _err(f"{args.output} holds {held} row{'s' if held != 1 else ''} already; running the others")
            started = time.monotonic()
            summary = _run_file(program, args, fmt, out, held)
        finally:
            out.close()
    seconds = time.monotonic() - started
    if summary is None:
        written = len(out.done) + len(out.failed) - held
        raise KeyboardInterrupt(f"{written} rows written to {args.output} by this run; "
                                "run the same command again to do the rest")
    _err(f"ran {summary.ran} rows in {_duration(seconds)}"
         + (f" ({summary.ran / seconds:.0f} rows/s)" if seconds > 0 and summary.ran else "")
         + f": {summary.succeeded} predicted, {summary.failed} failed"
         + (f"; {summary.skipped} already in {args.output}" if summary.skipped else ""))
    for line in summary.first_errors:
        _err(f"  {line}")
    if summary.stopped:
        _err(f"error: stopped early: {summary.stopped}. The rows written are kept; fix the cause and run the "
             "same command again (with --retry-failed to run the failed rows again)")
        return EXIT_INPUT
    if out.failed:
        where = "" if args.output == "-" else f" in {args.output}"
        _err(f"error: {len(out.failed)} row{'s' if len(out.failed) != 1 else ''} failed (their lines{where} "
             "say why); --retry-failed runs them again")
        return EXIT_INPUT
    return EXIT_OK


def _run_one(args: argparse.Namespace) -> int:
    """`run --input '{...}'`: one input, its output printed as JSON."""
    inputs = _json_object(args.input, "--input")
    with _lm_cache(args) as (cache, mode):
        program = artifact.load(args.artifact, cache=cache, cache_mode=mode, verify=args.verify,
                                lms=_lm_overrides(args.lm))
        try:
            output = program(**inputs)
        finally:
            program.close()
    print(json.dumps(dump(output), ensure_ascii=False, indent=2))
    return EXIT_OK


def _run_file(program, args: argparse.Namespace, fmt: str, out: predict.PredictionsFile,
              held: int) -> predict.RunSummary | None:
    """Run the rows of `args.input` into `out`; None when interrupted (Ctrl-C, SIGTERM)."""
    path = Path(args.input)
    try:
        stream = sys.stdin if args.input == "-" else path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise Failure(f"cannot read {args.input}: {exc.strerror}") from None
    total = None if args.input == "-" else max(predict.count_rows(path, fmt) - held, 0)
    progress = RunProgress(args.quiet, total)
    rows = predict.read_rows(stream, fmt, program.input_model, name=args.input, id_field=args.id)

    async def main() -> predict.RunSummary:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no signals off the main thread
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await predict.run_rows(program, rows, out, concurrency=args.concurrency,
                                          stop_after=args.stop_after, progress=progress.update)
        finally:
            await program.aclose()

    summary: predict.RunSummary | None = None
    try:
        summary = asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        pass
    finally:
        if stream is not sys.stdin:
            stream.close()
    progress.update(len(out.done) + len(out.failed) - held, len(out.failed), finished=True)
    return summary


def cmd_plan(args: argparse.Namespace) -> int:
    compiled = _compile(args.file)
    plan = plan_compiled(compiled, _train_spec(compiled, args.program))
    print(json.dumps(plan.to_json(), ensure_ascii=False, indent=2) if args.json else format_plan(plan))
    return EXIT_OK


def cmd_diff(args: argparse.Namespace) -> int:
    """Exit status as diff(1)'s: 0 identical, 1 different, 2 an artifact that cannot be read."""
    try:
        docs = [artifact.read(path) for path in (args.a, args.b)]
    except artifact.ArtifactError as exc:
        _err(f"error: {exc}")
        return EXIT_USAGE
    result = diff_docs(*docs)
    print(json.dumps({"a": args.a, "b": args.b, **result}, ensure_ascii=False, indent=2) if args.json
          else format_diff(result, args.a, args.b))
    return EXIT_OK if result["identical"] else EXIT_INPUT


@contextlib.contextmanager
def _finishing() -> Iterator[None]:
    """Writing the artifact and removing the checkpoint is the fit's last step; a Ctrl-C
    pressed during it is ignored, so the fit either wrote no artifact (interrupted before,
    exit 130) or finished (exit 0), never something between."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


# ---- the LM cache ------------------------------------------------------------------


@contextlib.contextmanager
def _lm_cache(args: argparse.Namespace) -> Iterator[tuple[LMCache | None, Mode]]:
    """The cache the flags ask for, closed afterwards; on Ctrl-C, says how to resume."""
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


def _missing(n: int) -> str:
    return (f"{n} LM call{'s were' if n != 1 else ' was'} missing from the cache and --offline forbids making "
            f"{'them' if n != 1 else 'it'}; {'their predictions count' if n != 1 else 'its prediction counts'} "
            "as failed. Run without --offline to make them")


def _usage_table(table: UsageTable) -> str:
    """Calls, cache hits, failures, tokens and latency per step and per LM."""
    rows = [(f"step {k}", v) for k, v in table.steps.items()] + [(f"lm {k}", v) for k, v in table.lms.items()]
    if len(table.steps) > 1:
        rows.append(("total", table.total))
    width = max([len(label) for label, _ in rows] + [8]) + 2
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:.0f}ms" if value < 10 else f"{value:.1f}s"
    lines = [f"{'LM usage':<{width}}{'calls':>7}{'cached':>8}{'failed':>8}{'tokens in':>11}{'tokens out':>12}"
             f"{'latency mean':>14}{'p50':>8}{'p95':>8}"]
    for label, s in rows:
        lines.append(f"{'  ' + label:<{width}}{s.calls:>7}{s.cache_hits:>8}{s.failures:>8}{s.prompt_tokens:>11}"
                     f"{s.completion_tokens:>12}{ms(s.latency()):>14}{ms(s.latency(50)):>8}{ms(s.latency(95)):>8}")
    if not rows:
        lines.append("  no LM calls")
    return "\n".join(lines)


def cmd_cache_stats(args: argparse.Namespace) -> int:
    path = default_path()
    if not path.exists():
        print(f"no LM cache at {path} yet")
        return EXIT_OK
    with LMCache(path) as cache:
        stats = cache.stats()
    print(f"LM cache {stats.path}: {stats.entries} entries, {_bytes(stats.size)} on disk")
    if stats.models:
        width = max(len(m.model) for m in stats.models) + 4
        print(f"{'model':<{width}}{'entries':>9}{'size':>11}{'hits':>9}{'misses':>9}")
        for m in stats.models:
            print(f"{'  ' + m.model:<{width}}{m.entries:>9}{_bytes(m.bytes):>11}{m.hits:>9}{m.misses:>9}")
    return EXIT_OK


def cmd_cache_clear(args: argparse.Namespace) -> int:
    path = default_path()
    if not path.exists():
        print(f"no LM cache at {path}; nothing to clear")
        return EXIT_OK
    with LMCache(path) as cache:
        if args.model is not None and args.model not in {m.model for m in cache.stats().models}:
            known = ", ".join(m.model for m in cache.stats().models) or "none"
            raise Failure(f"the LM cache has no entries for model `{args.model}`; models in it: {known}")
        removed = cache.clear(args.model)
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'}" + (f" of {args.model}" if args.model else "")
          + f" from {path}")
    return EXIT_OK


def _bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def cmd_render(args: argparse.Namespace) -> int:
    compiled = _compile(args.file)
    name = args.program or next(iter(compiled.programs), None)
    if name not in compiled.programs:
        raise Failure(f"{args.file} has no program" + (f" `{name}`" if name else ""))
    program = program_of(compiled, name)
    if args.artifact:
        trained = artifact.load(args.artifact)
        if trained.spec.name != name:
            raise Failure(f"{args.artifact} holds program `{trained.spec.name}`, not `{name}`")
        program = program.with_states(trained.states)
    inputs = _json_object(args.input, "--input") if args.input else None
    try:
        steps = asyncio.run(render_program(program, inputs))
    finally:
        asyncio.run(program.aclose())
    for rendered in steps:
        step, lm = rendered.step, program.spec.lms
        target = next((l.target for l in lm if l.name == step.lm), step.lm)
        print(f"=== {step.path}: {step.kind} {step.model} using {step.lm} ({target}) ===")
        if rendered.retrieved:
            print(f"(retrieved for this input, in prompt order: {', '.join(rendered.retrieved)})")
        if rendered.note:
            print(f"({rendered.note})")
        for message in rendered.messages:
            print(f"--- {message.role}\n{message.content}")
        print()
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    changed = []
    for path in args.files:
        source = _read(path)
        try:
            formatted = format_source(source)
        except CheckError as exc:
            _print_diagnostics(exc.diagnostics, source, exc.sources, "full")
            return EXIT_INPUT
        if formatted == source.text:
            continue
        changed.append(path)
        if args.diff:
            sys.stdout.writelines(difflib.unified_diff(
                source.text.splitlines(keepends=True), formatted.splitlines(keepends=True), path, path))
        elif not args.check:
            Path(path).write_text(formatted, encoding="utf-8")
    verb = "would reformat" if args.check or args.diff else "reformatted"
    for path in changed:
        _err(f"{verb} {path}")
    return EXIT_INPUT if changed and (args.check or args.diff) else EXIT_OK


def cmd_graph(args: argparse.Namespace) -> int:
    from . import plots  # matplotlib loads only when plots are drawn

    if Path(args.file).suffix == ".json":
        program = artifact.program_from(artifact.read(args.file), path=args.file)
        programs = {program.spec.name: (program.spec, program.states)}
    else:
        programs = dict(_compile(args.file).programs)
    if args.program:
        if args.program not in programs:
            raise Failure(f"{args.file} has no program `{args.program}` (it has: {', '.join(programs) or 'none'})")
        programs = {args.program: programs[args.program]}
    if not programs:
        raise Failure(f"{args.file} defines no program to draw")
    if args.output and len(programs) > 1:
        raise Failure(f"{args.file} has {len(programs)} programs; name one with --program to draw it into {args.output}")
    if args.output and Path(args.output).suffix.lower() not in (".png", ".svg"):
        raise Failure(f"cannot draw {args.output}: use a .png or .svg file name")
    for name, (spec, states) in programs.items():
        path = plots.save(plots.program_graph(spec, states), args.output or f"{name}.graph.png")
        print(f"wrote {path}")
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    from . import plots, report as html_report  # matplotlib loads only when plots are drawn

    doc = artifact.read(args.artifact)
    artifact.program_from(doc, path=args.artifact)  # an artifact that could not run is refused, not drawn
    paths = plots.plot_paths(args.artifact, args.output_dir, args.format)
    images = plots.write_all(doc, paths)
    written = list(paths.values())
    if args.report:
        target = html_report.report_path(args.artifact)
        if args.output_dir:
            target = Path(args.output_dir) / target.name
        written.append(html_report.write(target, doc, images=images))
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


def _lm_overrides(items: Sequence[str]) -> dict[str, dict]:
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


def cmd_lsp(args: argparse.Namespace) -> int:
    try:
        from .lsp.server import serve  # the LSP library loads only for this verb
    except ImportError as exc:
        raise Failure(f"the language server needs the `lsp` extra ({exc.name} is missing): "
                      "pip install 'icldsl[lsp]'") from None
    serve()
    return EXIT_OK


def _json_object(text: str, what: str) -> dict:
    try:
        value = jsontext.loads(text)
    except jsontext.JSONTextError as exc:
        raise Failure(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Failure(f"{what} must be a JSON object, for example '{{\"question\": \"...\"}}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icldsl", description="Train LM programs declared in .icl files.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("check", help="parse and check files; report every mistake",
                         description="Parse and check .icl files without calling any LM.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("full", "concise", "json", "github"), default="full",
                   help="full: source line and caret; concise: one line per diagnostic; json: one JSON "
                        "document on standard output (schema in the README); github: GitHub Actions "
                        "annotations on standard output")
    p.set_defaults(func=cmd_check)

    p = verbs.add_parser("fit", help="evaluate, train, evaluate again, write the artifact",
                         description="Evaluate the untrained program on the test set, train it as the train "
                                     "block says, evaluate it again, and write the frozen artifact. Beside it go "
                                     "<stem>.report.html and the plots <stem>.{graph,history,runs,comparison}.png, "
                                     "where <stem> is the artifact's name without .artifact.json.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--program", help="which train block, by program name (default: the first)")
    p.add_argument("-o", "--output", help="artifact path (default: <program>.artifact.json)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-report", action="store_true", help="write only the artifact: no plots, no report.html")
    p.add_argument("--restart", action="store_true",
                   help="ignore the checkpoint an interrupted fit left (<stem>.checkpoint.json) and start over")
    p.add_argument("--sign", action="store_true",
                   help=f"sign the artifact (HMAC-SHA256) with the key in ${artifact.SIGNING_KEY_ENV}")
    _cache_flags(p)
    p.set_defaults(func=cmd_fit)

    p = verbs.add_parser("eval", help="score a program on its test set",
                         description="Score the untrained program, or a trained artifact, on the test split "
                                     "of the train block's data.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--artifact", help="evaluate this trained artifact instead of the untrained program")
    p.add_argument("--program", help="which train block, by program name (default: the first)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _deploy_flags(p)
    _cache_flags(p)
    p.set_defaults(func=cmd_eval)

    p = verbs.add_parser("fmt", help="rewrite files in the canonical layout",
                         description="Rewrite .icl files in one canonical layout, keeping comments. "
                                     "Formatting twice changes nothing.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    p.add_argument("--diff", action="store_true", help="print what would change; exit 1 if anything would")
    p.set_defaults(func=cmd_fmt)

    p = verbs.add_parser("render", help="show the messages every LM step would send, without an LM",
                         description="Print the exact messages each LM step would send: its instructions, "
                                     "output schema, few-shot examples and input. No LM is called. Fields that "
                                     "earlier steps would fill show as <step.field>.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--artifact", help="use the instructions and examples this trained artifact learned")
    p.add_argument("--input", help="the program's input as a JSON object (default: placeholders)")
    p.add_argument("--program", help="which program (default: the first)")
    p.set_defaults(func=cmd_render)

    p = verbs.add_parser("run", help="run an artifact on one input, or on every row of a file",
                         description="Run a frozen artifact. With --input '{...}' on one input, printing its "
                                     "output as JSON. With --input FILE (JSONL or CSV; - for stdin) on every row, "
                                     "writing one JSON line per row to --output: {\"row\": N, \"output\": {...}} "
                                     "or {\"row\": N, \"error\": \"...\"}, in the order rows finish. Running the "
                                     "same command again skips the rows the output holds. Exit status 1 when a row "
                                     "failed.")
    p.add_argument("artifact", metavar="ARTIFACT")
    p.add_argument("--input", required=True, metavar="JSON|FILE|-",
                   help="one input as a JSON object, or a .jsonl/.csv file of inputs, or - for JSONL on stdin")
    p.add_argument("--output", default="-", metavar="FILE|-",
                   help="where the predictions of a file's rows go, one JSON line each (default: stdout)")
    p.add_argument("--format", choices=("jsonl", "csv"), help="the input's format (default: from its suffix)")
    p.add_argument("--concurrency", type=_positive, default=8, metavar="N", help="rows in flight at once (default 8)")
    p.add_argument("--id", metavar="FIELD", help="copy this field of each row into its output line as `id`")
    p.add_argument("--retry-failed", action="store_true",
                   help="drop the rows that failed from --output and run them again")
    p.add_argument("--stop-after", type=int, default=100, metavar="N",
                   help="stop when N rows in a row fail to predict, as when no LM can be reached (default 100; "
                        "0: never)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    _deploy_flags(p)
    _cache_flags(p)
    p.set_defaults(func=cmd_run)

    p = verbs.add_parser("plan", help="the LM calls and tokens a fit will take, without spending any",
                         description="Print, per phase of the fit (test before training, validation, each "
                                     "epoch, optimizer extras, test after training), the program runs, LM calls "
                                     "and estimated prompt and completion tokens, and whether the train block's "
                                     "budget covers training. Loads the data; calls no LM.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--program", help="which train block, by program name (default: the first)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)

    p = verbs.add_parser("diff", help="what changed between two artifacts",
                         description="Show what changed from artifact A to B: each step's instructions, "
                                     "examples and frozen flag, test scores, settings, source and data. "
                                     "Exit status 0 when they are identical, 1 when they differ, 2 when one "
                                     "cannot be read.")
    p.add_argument("a", metavar="A")
    p.add_argument("b", metavar="B")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    p.set_defaults(func=cmd_diff)

    p = verbs.add_parser("graph", help="draw a program's graph (PNG or SVG)",
                         description="Draw the program's steps, models and wiring, trainable steps marked. "
                                     "FILE is a .icl file or an artifact (whose learned state is shown).")
    p.add_argument("file", metavar="FILE")
    p.add_argument("-o", "--output", help="a .png or .svg path (default: <program>.graph.png)")
    p.add_argument("--program", help="which program of a .icl file (default: each one)")
    p.set_defaults(func=cmd_graph)

    p = verbs.add_parser("plot", help="redraw the plots of an artifact",
                         description="Redraw the plots that fit wrote beside an artifact: "
                                     "<stem>.{graph,history,runs,comparison}.png (or .svg).")
    p.add_argument("artifact", metavar="ARTIFACT")
    p.add_argument("-o", "--output-dir", metavar="DIR", help="where to write them (default: beside the artifact)")
    p.add_argument("--format", choices=("png", "svg"), default="png")
    p.add_argument("--report", action="store_true",
                   help="also write <stem>.report.html (without predictions: the artifact does not keep them)")
    p.set_defaults(func=cmd_plot)

    p = verbs.add_parser("lsp", help="run the language server (for editors) over stdin and stdout",
                         description="Run the icldsl language server, speaking the Language Server Protocol "
                                     "over standard input and output: diagnostics as you type, hover, go to "
                                     "definition, references, completion, document symbols and formatting. "
                                     "Editors start it; see editors/vscode. Needs the `lsp` extra.")
    p.set_defaults(func=cmd_lsp)

    p = verbs.add_parser("cache", help="show or clear the cache of LM calls",
                         description=f"The on-disk cache of LM calls that fit, eval and run share: "
                                     f"${ENV_DIR}/lm.sqlite3, else ~/.cache/icldsl/lm.sqlite3.")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    a = actions.add_parser("stats", help="entries, size on disk, hits and misses per model",
                           description="Show what the LM cache holds: entries, size on disk, hits and misses, "
                                       "per model.")
    a.set_defaults(func=cmd_cache_stats)
    a = actions.add_parser("clear", help="delete cached calls", description="Delete every cached LM call, or "
                                                                               "those of one model.")
    a.add_argument("--model", help="only this model's calls, as `provider/model` (see `icldsl cache stats`)")
    a.set_defaults(func=cmd_cache_clear)
    return parser


def _deploy_flags(p: argparse.ArgumentParser) -> None:
    """How an artifact is trusted and where its LM requests go."""
    p.add_argument("--verify", action="store_true",
                   help=f"refuse an artifact not signed with the key in ${artifact.SIGNING_KEY_ENV}")
    p.add_argument("--lm", action="append", default=[], metavar="NAME.OPTION=VALUE",
                   help="replace a setting of the artifact's lm NAME: its target, base_url, api_key=env:VAR, ... "
                        "(repeat for several; VALUE null removes the option)")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _cache_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--no-cache", action="store_true", help="neither read nor write the LM cache")
    group.add_argument("--offline", action="store_true",
                       help="answer every LM call from the cache; a call missing from it fails instead of being made")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)  # --help and bad usage exit (SystemExit) from here
    except KeyboardInterrupt:
        _err("\ninterrupted")
        return EXIT_INTERRUPTED
    try:
        logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
        with _stale_artifact_warnings():
            return args.func(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt as exc:
        _err("\ninterrupted" + (f": {exc}" if str(exc) else ""))
        return EXIT_INTERRUPTED
    except Error as exc:
        _err(f"error: {exc}")
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
