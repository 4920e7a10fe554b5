"""The verbs about artifacts and pictures: `diff` (two artifacts), `graph` (a program) and
`plot` (an artifact's plots and report, drawn again)."""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from .. import artifact, drawing
from ..diff import diff_docs, format_diff
from ..errors import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from ..paths import read_stream
from ..training.training_record import TrainingRecord
from .console import STDIN, STDIN_NAME, Failure, compile_or_exit, err, read_artifact, stdin_once


def cmd_diff(args: argparse.Namespace) -> int:
    """Exit status as diff(1)'s: 0 identical, 1 different, 2 an artifact that cannot be read."""
    stdin_once(A=args.a, B=args.b)
    try:
        docs = [read_artifact(path) for path in (args.a, args.b)]
        for path, doc in zip((args.a, args.b), docs):
            TrainingRecord.of_artifact(doc, path)  # a training record that cannot be read is refused, not compared
    except artifact.ArtifactError as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    result = diff_docs(*docs)
    print(json.dumps({"a": args.a, "b": args.b, **result}, ensure_ascii=False, indent=2) if args.json
          else format_diff(result, args.a, args.b))
    return EXIT_OK if result["identical"] else EXIT_INPUT


def cmd_graph(args: argparse.Namespace) -> int:
    """FILE is an artifact when it ends in .json (or, from standard input, when it is a JSON
    object); `-o -` writes the picture to standard output."""
    drawing.require("a program's graph")
    from .. import plots  # matplotlib loads only when plots are drawn

    if args.file == STDIN:
        try:
            data = read_stream(sys.stdin.buffer, artifact.MAX_BYTES)
        except OSError as exc:
            raise Failure(f"cannot read {STDIN_NAME}: {exc.strerror}") from None
        drawn_from_artifact = data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")
    else:
        data, drawn_from_artifact = None, Path(args.file).suffix == ".json"
    stream = io.BytesIO(data) if data is not None else None
    if drawn_from_artifact:
        name = STDIN_NAME if stream is not None else args.file
        program = artifact.program_from(artifact.read(name, stream), path=name)
        programs = {program.spec.name: (program.spec, program.states)}
    else:
        from ..runtime.state import spec_and_states

        compiled = compile_or_exit(args.file, stream, data=False)
        programs = {name: spec_and_states(compiled, name) for name in compiled.programs}
    if args.program:
        if args.program not in programs:
            raise Failure(f"{args.file} has no program `{args.program}` (it has: {', '.join(programs) or 'none'})")
        programs = {args.program: programs[args.program]}
    if not programs:
        raise Failure(f"{args.file} defines no program to draw")
    if args.output and len(programs) > 1:
        raise Failure(f"{args.file} has {len(programs)} programs; name one with --program to draw it into {args.output}")
    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output and args.output != STDIN else None
    if suffix not in (None, "png", "svg"):
        raise Failure(f"cannot draw {args.output}: use a .png or .svg file name")
    if suffix and args.format and suffix != args.format:
        raise Failure(f"--format {args.format} does not fit {args.output}: name it .{args.format}, or leave --format out")
    fmt = args.format or suffix or "png"
    for name, (spec, states) in programs.items():
        figure = plots.program_graph(spec, states)
        if args.output == STDIN:
            sys.stdout.buffer.write(plots.render(figure, fmt))
        else:
            print(f"wrote {plots.save(figure, args.output or f'{name}.graph.{fmt}')}")
    return EXIT_OK


def cmd_plot(args: argparse.Namespace) -> int:
    drawing.require("an artifact's plots")
    from .. import plots, report as html_report  # matplotlib loads only when plots are drawn

    doc = read_artifact(args.artifact)
    artifact.program_from(doc, path=args.artifact)  # an artifact that could not run is refused, not drawn
    TrainingRecord.of_artifact(doc, args.artifact)  # nor one whose training record cannot be read
    # Named after the artifact's file; one from standard input after its program, in the working directory.
    named = f"{doc['program']['name']}.artifact.json" if args.artifact == STDIN else args.artifact
    paths = plots.plot_paths(named, args.output_dir, args.format)
    images = plots.write_all(doc, paths)
    written = [paths[name] for name in images]
    if args.report:
        target = html_report.report_path(named)
        if args.output_dir:
            target = Path(args.output_dir) / target.name
        written.append(html_report.write(target, doc, images=images))
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK
