"""The `icldsl` command: the only module that prints or exits.

Exit codes: 0 success; 1 the input is wrong (diagnostics, bad data, bad
artifact, unusable LM settings, a failed prediction); 2 bad command-line usage;
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Sequence

from . import artifact
from .compiler import Compiled, compile_source
from .datasets import DataError
from .diagnostics import CheckError, render, render_concise, sort_key
from .lm.base import LMConfigError
from .runtime.models import dump
from .runtime.program import InvalidInput, PredictionError
from .source import Source
from .training.session import Scores, eval_compiled, fit_compiled, program_of

EXIT_OK, EXIT_INPUT, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Failure(Exception):
    """A user-facing error: printed as `error: ...`, exit status 1."""


def _err(text: str = "") -> None:
    print(text, file=sys.stderr)


# ---- compile with diagnostics ----------------------------------------------------


def _compile(path: str, fmt: str = "full") -> Compiled:
    try:
        source = Source.from_path(path)
    except OSError as exc:
        raise Failure(f"cannot read {path}: {exc.strerror}") from None
    try:
        compiled = compile_source(source)
    except CheckError as exc:
        _print_diagnostics(exc.diagnostics, source, fmt)
        raise SystemExit(EXIT_INPUT) from None
    _print_diagnostics(compiled.warnings, source, fmt)
    return compiled


def _print_diagnostics(diagnostics, source: Source, fmt: str) -> None:
    color = sys.stderr.isatty()
    for d in sorted(diagnostics, key=sort_key):
        _err(render_concise(d) if fmt == "concise" else render(d, {source.name: source}, color=color) + "\n")
    errors = sum(d.severity == "error" for d in diagnostics)
    if errors:
        _err(f"{source.name}: {errors} error{'s' if errors != 1 else ''}, not compiled")


# ---- progress --------------------------------------------------------------------


class ProgressLine:
    """Counts, rate, time left and running reward; redrawn in place on a terminal,
    a line per quarter otherwise; silent with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.started: dict[str, float] = {}

    def __call__(self, label: str, done: int, total: int, reward: float) -> None:
        if self.quiet:
            return
        start = self.started.setdefault(label, time.monotonic())
        elapsed = time.monotonic() - start
        rate = done / elapsed if done and elapsed > 0 else 0.0
        left = (total - done) / rate if rate > 0 else 0.0
        text = (f"{label:<22} {done:>4}/{total:<4} reward {reward:.3f}  "
                f"{rate:.2f} ex/s  {_duration(elapsed)} elapsed" + (f"  {_duration(left)} left" if done else ""))
        if self.tty:
            sys.stderr.write("\r\x1b[2K" + text + ("\n" if done == total else ""))
            sys.stderr.flush()
        elif done == total or done % max(1, total // 4) == 0:
            _err(text)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds + 0.5), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


# ---- verbs -----------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    for path in args.files:
        _compile(path, args.format)
        _err(f"{path}: ok")
    return EXIT_OK


def _train_spec(compiled: Compiled, program: str | None):
    try:
        return compiled.train(program)
    except KeyError:
        raise Failure(f"{compiled.source.name} has no train block" + (f" for program `{program}`" if program else "")
                      + "; fit and eval need one (see programs/gsm8k.icl)") from None


def _scores_table(rows: list[tuple[str, Scores]]) -> str:
    header = f"{'':<10}" + "".join(f"{name:>20}" for name, _ in rows)
    def cell(s: Scores) -> str:
        return f"{s.mean:.3f} ± {s.std:.3f}" if len(s.runs) > 1 else f"{s.mean:.3f}"
    line = f"{'reward':<10}" + "".join(f"{cell(s):>20}" for _, s in rows)
    fails = f"{'failures':<10}" + "".join(f"{sum(r.failures for r in s.runs):>20}" for _, s in rows)
    return "\n".join([header, line, fails])


def cmd_fit(args: argparse.Namespace) -> int:
    compiled = _compile(args.file)
    train = _train_spec(compiled, args.program)
    out = Path(args.output or f"{train.program}.artifact.json")
    started = time.monotonic()
    report = asyncio.run(fit_compiled(compiled, train, progress=ProgressLine(args.quiet)))
    artifact.write(out, report.artifact)
    u = report.usage
    print(f"\n{train.program}: {report.sizes['train']} train, {report.sizes['validation']} validation, "
          f"{report.sizes['test']} test examples; {train.epochs} epoch(s) in {_duration(time.monotonic() - started)}")
    for epoch in range(len(report.history.history.get("reward", []))):
        logs = "  ".join(f"{k} {v[epoch]:.3f}" for k, v in report.history.history.items())
        print(f"  epoch {epoch + 1}: {logs}")
    kept = report.history.best_epoch
    print(f"  kept: {'epoch ' + str(kept) if kept else 'the untrained program (no epoch beat it on ' + train.monitor + ')'}")
    print(f"  LM calls {u.calls} (failed {u.failures}), tokens {u.prompt_tokens} prompt + {u.completion_tokens} completion")
    print("\ntest set" + ("" if train.runs == 1 else f" ({train.runs} runs, mean ± std)"))
    print(_scores_table([("untrained", report.untrained), ("trained", report.trained)]))
    print(f"\nwrote {out}")
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    compiled = _compile(args.file)
    train = _train_spec(compiled, args.program)
    if args.artifact:
        program = artifact.load(args.artifact)
        if program.spec.name != train.program:
            raise Failure(f"{args.artifact} holds program `{program.spec.name}`, not `{train.program}`")
        label = args.artifact
    else:
        program, label = program_of(compiled, train.program), "untrained"
    scores = asyncio.run(eval_compiled(compiled, train, program, progress=ProgressLine(args.quiet)))
    print(_scores_table([(label if len(label) < 20 else "artifact", scores)]))
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    program = artifact.load(args.artifact)
    try:
        inputs = json.loads(args.input)
    except json.JSONDecodeError as exc:
        raise Failure(f"--input is not JSON: {exc}") from None
    if not isinstance(inputs, dict):
        raise Failure("--input must be a JSON object, for example '{\"question\": \"...\"}'")
    try:
        output = program(**inputs)
    finally:
        program.close()
    print(json.dumps(dump(output), ensure_ascii=False, indent=2))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="icldsl", description="Train LM programs declared in .icl files.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = verbs.add_parser("check", help="parse and check files; report every mistake",
                         description="Parse and check .icl files without calling any LM.")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--format", choices=("full", "concise"), default="full",
                   help="full: source line and caret; concise: one line per diagnostic")
    p.set_defaults(func=cmd_check)

    p = verbs.add_parser("fit", help="evaluate, train, evaluate again, write the artifact",
                         description="Evaluate the untrained program on the test set, train it as the train "
                                     "block says, evaluate it again, and write the frozen artifact.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--program", help="which train block, by program name (default: the first)")
    p.add_argument("-o", "--output", help="artifact path (default: <program>.artifact.json)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_fit)

    p = verbs.add_parser("eval", help="score a program on its test set",
                         description="Score the untrained program, or a trained artifact, on the test split "
                                     "of the train block's data.")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--artifact", help="evaluate this trained artifact instead of the untrained program")
    p.add_argument("--program", help="which train block, by program name (default: the first)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=cmd_eval)

    p = verbs.add_parser("run", help="run an artifact on one input",
                         description="Run a frozen artifact on one input and print its output as JSON.")
    p.add_argument("artifact", metavar="ARTIFACT")
    p.add_argument("--input", required=True, help="the input as a JSON object")
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(name)s: %(message)s")
    try:
        return args.func(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except (Failure, DataError, LMConfigError, artifact.ArtifactError, InvalidInput, PredictionError) as exc:
        _err(f"error: {exc}")
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
