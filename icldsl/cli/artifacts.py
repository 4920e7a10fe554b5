"""The verbs about artifacts and pictures: `diff` (two artifacts), `graph` (a program) and
`plot` (an artifact's plots and report, drawn again)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import artifact
from ..diff import diff_docs, format_diff
from ..errors import EXIT_INPUT, EXIT_OK, EXIT_USAGE
from .console import Failure, compile_or_exit, err


def cmd_diff(args: argparse.Namespace) -> int:
    """Exit status as diff(1)'s: 0 identical, 1 different, 2 an artifact that cannot be read."""
    try:
        docs = [artifact.read(path) for path in (args.a, args.b)]
    except artifact.ArtifactError as exc:
        err(f"error: {exc}")
        return EXIT_USAGE
    result = diff_docs(*docs)
    print(json.dumps({"a": args.a, "b": args.b, **result}, ensure_ascii=False, indent=2) if args.json
          else format_diff(result, args.a, args.b))
    return EXIT_OK if result["identical"] else EXIT_INPUT


def cmd_graph(args: argparse.Namespace) -> int:
    from .. import plots  # matplotlib loads only when plots are drawn

    if Path(args.file).suffix == ".json":
        program = artifact.program_from(artifact.read(args.file), path=args.file)
        programs = {program.spec.name: (program.spec, program.states)}
    else:
        programs = dict(compile_or_exit(args.file).programs)
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
    from .. import plots, report as html_report  # matplotlib loads only when plots are drawn

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
