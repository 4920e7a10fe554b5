"""The verbs that train and score: `fit`, `eval`, and `plan` (what a fit will take)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from typing import Callable

from .. import artifact
from ..errors import EXIT_INPUT, EXIT_OK
from ..fitting import fit, missing_message
from ..plan import format_plan, plan_compiled
from ..language.specs import TrainSpec
from ..training.session import FitReport, eval_compiled, program_of, train_block
from . import tables
from .console import (STDIN, Failure, compile_or_exit, err, lm_cache, lm_overrides, load_artifact, source_given,
                      stdin_once, tracing)
from .progress import ProgressLine, duration


def cmd_fit(args: argparse.Namespace) -> int:
    """With `-o -` the artifact goes to standard output, the summary to stderr, and nothing
    beside it: no report, plots, history or checkpoint (so an interrupted fit starts over)."""
    if args.sign:
        artifact.signing_key()  # before any work: a missing key stops the fit now
    compiled = compile_or_exit(args.file)
    train = train_block(compiled, args.program)
    to_stdout = args.output == STDIN
    say = functools.partial(print, file=sys.stderr if to_stdout else sys.stdout)
    started = time.monotonic()
    with lm_cache(args) as (cache, mode), tracing(args) as tracers:
        fitted = fit(compiled, program=args.program, output=args.output, cache=cache, cache_mode=mode,
                     sign=args.sign, report=not args.no_report, restart=args.restart,
                     progress=ProgressLine(args.quiet), tracers=tracers, write=not to_stdout,
                     on_trained=lambda report: _print_fit(report, train, started, say, args.quiet))
    signed = " (signed)" if fitted.signed else ""
    if fitted.path is None:
        sys.stdout.write(artifact.canonical(fitted.artifact))
        say("wrote the artifact to standard output" + signed)
        return EXIT_OK
    if fitted.note:
        say(f"\nnote: {fitted.note}")
    if fitted.files:
        say(f"\nwrote {fitted.files[-1]} and {len(fitted.files) - 1} plots "
            f"({', '.join(p.name for p in fitted.files[:-1])})")
    say(f"wrote {fitted.path}" + signed)
    return EXIT_OK


def _print_fit(report: FitReport, train: TrainSpec, started: float, say: Callable[..., None],
               quiet: bool = False) -> None:
    """What `fit` prints once training is done: once the artifact is written, or before the fit refuses to write it
    (with `quiet`, the per-label table only for the worst `tables.LABELS_SHOWN` labels)."""
    history = report.history
    say(f"\n{train.program}: {report.sizes['train']} train, {report.sizes['validation']} validation, "
          f"{report.sizes['test']} test examples; {history.epochs_run} of {train.epochs} epoch(s) in "
          f"{duration(time.monotonic() - started)}")
    for line in tables.epoch_lines(history):
        say(line)
    if history.stopped:
        say(f"  stopped: {history.stopped}")
    kept = history.best_epoch
    say(f"  kept: {'epoch ' + str(kept) if kept else 'the untrained program (no epoch beat it on ' + train.monitor + ')'}")
    for line in tables.event_lines(history.events):
        say(line)
    say("\ntest set" + ("" if train.runs == 1 else f" ({train.runs} runs, mean ± std over runs)"))
    say(tables.scores_table([("untrained", report.untrained), ("trained", report.trained)]))
    labels = tables.labels_table([("untrained", report.untrained), ("trained", report.trained)],
                                 worst=tables.LABELS_SHOWN if quiet else None)
    if labels:
        say(labels)
    difference = tables.difference(report.untrained, report.trained)
    if difference:
        say(difference)
    for line in tables.baseline_lines(report.baselines):
        say(line)
    say("\n" + tables.usage_table(report.usage_table))


def cmd_eval(args: argparse.Namespace) -> int:
    stdin_once(FILE=args.file, **{"--artifact": args.artifact})
    compiled = compile_or_exit(args.file)
    train = train_block(compiled, args.program)
    with lm_cache(args) as (cache, mode), tracing(args) as tracers:
        if args.artifact:
            program = load_artifact(args.artifact, cache=cache, cache_mode=mode, verify=args.verify,
                                    lms=lm_overrides(args.lm), tracers=tracers, check_source=source_given(args.file))
            if program.spec.name != train.program:
                raise Failure(f"{args.artifact} holds program `{program.spec.name}`, not `{train.program}`")
            label = args.artifact
        else:
            program = program_of(compiled, train.program, cache=cache, cache_mode=mode, tracers=tracers)
            label = "untrained"
        scores = asyncio.run(eval_compiled(compiled, train, program, progress=ProgressLine(args.quiet),
                                           data_bounds=not args.artifact))
    print(tables.scores_table([(label if len(label) < 20 else "artifact", scores)]))
    labels = tables.labels_table([(label if len(label) < 20 else "artifact", scores)])
    if labels:
        print(labels)
    table = scores.usage_table
    print("\n" + tables.usage_table(table))
    if table.total.missing:
        err(f"\nerror: {missing_message(table.total.missing)}")
        return EXIT_INPUT
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    compiled = compile_or_exit(args.file)
    plan = plan_compiled(compiled, train_block(compiled, args.program))
    print(json.dumps(plan.to_json(), ensure_ascii=False, indent=2) if args.json else format_plan(plan))
    return EXIT_OK
