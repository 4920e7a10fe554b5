"""The verbs that train and score: `fit`, `eval`, and `plan` (what a fit will take)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import sys
import time
from pathlib import Path

from .. import artifact
from ..compiler import Compiled
from ..errors import EXIT_INPUT, EXIT_OK
from ..paths import beside
from ..plan import format_plan, plan_compiled
from ..training.session import (MAX_FAILED_SHARE, eval_compiled, failed_predictions, failure_message, fit_compiled,
                                program_of)
from . import tables
from .console import (STDIN, Failure, compile_or_exit, err, finishing, lm_cache, lm_overrides, load_artifact, missing,
                      stdin_once)
from .progress import ProgressLine, duration


def train_spec(compiled: Compiled, program: str | None):
    try:
        return compiled.train(program)
    except KeyError:
        raise Failure(f"{compiled.source.name} has no train block" + (f" for program `{program}`" if program else "")
                      + "; fit and eval need one (see programs/gsm8k.icl)") from None


def cmd_fit(args: argparse.Namespace) -> int:
    """With `-o -` the artifact goes to standard output, the summary to stderr, and nothing
    beside it: no report, plots, history or checkpoint (so an interrupted fit starts over)."""
    key = artifact.signing_key() if args.sign else None  # before any work: a missing key stops the fit now
    compiled = compile_or_exit(args.file)
    train = train_spec(compiled, args.program)
    to_stdout = args.output == STDIN
    out = Path(args.output or f"{train.program}.artifact.json")
    checkpoint = None if to_stdout else beside(out, "checkpoint.json")
    if args.restart and checkpoint:
        checkpoint.unlink(missing_ok=True)
    say = functools.partial(print, file=sys.stderr if to_stdout else sys.stdout)
    started = time.monotonic()
    with lm_cache(args) as (cache, mode):
        report = asyncio.run(fit_compiled(compiled, train, cache=cache, cache_mode=mode,
                                          progress=ProgressLine(args.quiet), checkpoint=checkpoint,
                                          csv_log=None if to_stdout else beside(out, "history.csv")))
    uncached = report.usage.missing
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
    labels = tables.labels_table([("untrained", report.untrained), ("trained", report.trained)])
    if labels:
        say(labels)
    difference = tables.difference(report.untrained, report.trained)
    if difference:
        say(difference)
    say("\n" + tables.usage_table(report.usage_table))
    # Neither an artifact trained on calls that were never made, nor one whose scores are
    # mostly failures, may replace a good one.
    if uncached:
        err(f"\nerror: {missing(uncached)}; no artifact written")
        return EXIT_INPUT
    failed, total, error, count = failed_predictions(report.untrained, report.trained)
    if failed > MAX_FAILED_SHARE * total:
        err(f"\nerror: {failure_message(failed, total, error, count, 'test predictions')}; more than "
            f"{MAX_FAILED_SHARE:.0%} failed, so no artifact was written")
        return EXIT_INPUT
    doc = artifact.sign(report.artifact, key) if key else report.artifact
    if to_stdout:
        sys.stdout.write(artifact.canonical(doc))
        say("wrote the artifact to standard output" + (" (signed)" if key else ""))
        return EXIT_OK
    if not args.no_report:  # before the artifact: a fit interrupted while drawing leaves none, as documented
        from .. import report as html_report  # matplotlib loads only when plots are drawn

        scored = [s.runs[-1].scored if s.runs else () for s in (report.untrained, report.trained)]
        validation = report.history.validation.scored if report.history.validation else ()
        predictions = html_report.predictions_of(*scored, validation)
        written = html_report.write_beside(out, doc, predictions=predictions)
        say(f"\nwrote {written[-1]} and {len(written) - 1} plots ({', '.join(p.name for p in written[:-1])})")
    with finishing():
        artifact.write(out, doc)
        checkpoint.unlink(missing_ok=True)
    say(f"wrote {out}" + (" (signed)" if key else ""))
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    stdin_once(FILE=args.file, **{"--artifact": args.artifact})
    compiled = compile_or_exit(args.file)
    train = train_spec(compiled, args.program)
    with lm_cache(args) as (cache, mode):
        if args.artifact:
            program = load_artifact(args.artifact, cache=cache, cache_mode=mode, verify=args.verify,
                                    lms=lm_overrides(args.lm))
            if program.spec.name != train.program:
                raise Failure(f"{args.artifact} holds program `{program.spec.name}`, not `{train.program}`")
            label = args.artifact
        else:
            program, label = program_of(compiled, train.program, cache=cache, cache_mode=mode), "untrained"
        scores = asyncio.run(eval_compiled(compiled, train, program, progress=ProgressLine(args.quiet)))
    print(tables.scores_table([(label if len(label) < 20 else "artifact", scores)]))
    labels = tables.labels_table([(label if len(label) < 20 else "artifact", scores)])
    if labels:
        print(labels)
    table = scores.usage_table
    print("\n" + tables.usage_table(table))
    if table.total.missing:
        err(f"\nerror: {missing(table.total.missing)}")
        return EXIT_INPUT
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    compiled = compile_or_exit(args.file)
    plan = plan_compiled(compiled, train_spec(compiled, args.program))
    print(json.dumps(plan.to_json(), ensure_ascii=False, indent=2) if args.json else format_plan(plan))
    return EXIT_OK
