"""The verbs that run a program: `run` (an artifact on one input or a file of rows) and
`render` (the messages each step would send, without an LM)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from .. import predict
from ..errors import EXIT_INPUT, EXIT_OK
from ..runtime.models import dump
from ..runtime.render import render_program, render_text
from ..training.session import program_of
from .console import (Failure, compile_or_exit, err, json_object, lm_cache, lm_overrides, load_artifact,
                      source_given, stdin_once, tracing)
from .progress import RunProgress, duration


def cmd_run(args: argparse.Namespace) -> int:
    stdin_once(ARTIFACT=args.artifact, **{"--input": args.input})
    if args.input.lstrip().startswith("{"):
        return _run_one(args)
    with lm_cache(args) as (cache, mode), tracing(args) as tracers:
        program = load_artifact(args.artifact, cache=cache, cache_mode=mode, verify=args.verify,
                                lms=lm_overrides(args.lm), tracers=tracers)
        fmt = predict.input_format(args.input, args.format)
        out = predict.PredictionsFile(args.output, stream=sys.stdout.buffer, retry_failed=args.retry_failed)
        try:
            if out.cut:
                err(f"warning: cut a torn last line ({out.cut} bytes) off {args.output}")
            held = len(out.done) + len(out.failed)
            if held:
                err(f"{args.output} holds {held} row{'s' if held != 1 else ''} already; running the others")
            program.prepare(args.concurrency)  # like loading the artifact: before the rate's clock
            with _collecting_less(args.concurrency):
                started = time.monotonic()
                summary = _run_file(program, args, fmt, out, held)
        finally:
            out.close()
    seconds = time.monotonic() - started
    if summary is None:
        written = len(out.done) + len(out.failed) - held
        raise KeyboardInterrupt(f"{written} rows written to {args.output} by this run; "
                                "run the same command again to do the rest")
    err(f"ran {summary.ran} rows in {duration(seconds)}"
        + (f" ({summary.ran / seconds:.0f} rows/s)" if seconds > 0 and summary.ran else "")
        + f": {summary.succeeded} predicted, {summary.failed} failed"
        + (f"; {summary.skipped} already in {args.output}" if summary.skipped else ""))
    for line in summary.first_errors:
        err(f"  {line}")
    if summary.stopped:
        err(f"error: stopped early: {summary.stopped}. The rows written are kept; fix the cause and run the "
            "same command again (with --retry-failed to run the failed rows again)")
        return EXIT_INPUT
    if out.failed:
        where = "" if args.output == "-" else f" in {args.output}"
        err(f"error: {len(out.failed)} row{'s' if len(out.failed) != 1 else ''} failed (their lines{where} "
            "say why); --retry-failed runs them again")
        return EXIT_INPUT
    return EXIT_OK


@contextlib.contextmanager
def _collecting_less(concurrency: int) -> Iterator[None]:
    """Python's cyclic garbage collector set, for the while, for a run of many rows that
    each leave nothing behind: what is loaded already is kept out of full collections
    (`gc.freeze`), and a young collection waits for more objects than the rows in flight
    hold. With Python's defaults, at 256 rows in flight a young collection came every ~10
    rows, each walking every request in flight: 18% of the run (bench/README.md,
    "Hundreds of calls in flight")."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 100 * concurrency), *threshold[1:])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _run_one(args: argparse.Namespace) -> int:
    """`run --input '{...}'`: one input, its output printed as JSON."""
    inputs = json_object(args.input, "--input")
    with lm_cache(args) as (cache, mode), tracing(args) as tracers:
        program = load_artifact(args.artifact, cache=cache, cache_mode=mode, verify=args.verify,
                                lms=lm_overrides(args.lm), tracers=tracers)
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
        stream = sys.stdin.buffer if args.input == "-" else path.open("rb")
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
        if stream is not sys.stdin.buffer:
            stream.close()
    progress.update(len(out.done) + len(out.failed) - held, len(out.failed), finished=True)
    return summary


def cmd_render(args: argparse.Namespace) -> int:
    stdin_once(FILE=args.file, **{"--artifact": args.artifact})
    compiled = compile_or_exit(args.file, data=False)
    name = args.program or next(iter(compiled.programs), None)
    if name not in compiled.programs:
        raise Failure(f"{args.file} has no program" + (f" `{name}`" if name else ""))
    program = program_of(compiled, name)
    if args.artifact:
        trained = load_artifact(args.artifact, check_source=source_given(args.file))
        if trained.spec.name != name:
            raise Failure(f"{args.artifact} holds program `{trained.spec.name}`, not `{name}`")
        program = program.with_states(trained.states)
    inputs = json_object(args.input, "--input") if args.input else None
    try:
        steps = asyncio.run(render_program(program, inputs))
    finally:
        asyncio.run(program.aclose())
    sys.stdout.write(render_text(program, steps))
    return EXIT_OK
