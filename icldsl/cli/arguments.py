"""The command line's grammar: every verb, its arguments and their help.

Each verb names its handler as `module.function` within this package (`command`), so
parsing the command line imports none of the library: the handler's module is imported
only when its verb runs. `completion.py` writes shell completion from this parser.
"""

from __future__ import annotations

import argparse
import sys
import textwrap

from .. import __version__
from ..errors import EXIT_STATUSES

# Named in help texts; the library reads them (artifact.SIGNING_KEY_ENV, paths.CACHE_DIR_ENV),
# which a test holds these to, so that `icldsl --help` imports none of it (pathlib alone is a
# tenth of `--help`).
SIGNING_KEY_ENV = "ICLDSL_SIGNING_KEY"
CACHE_DIR_ENV = "ICLDSL_CACHE_DIR"
MAX_CONCURRENCY = 1024  # options.MAX_CONCURRENCY, which a test holds this to
SHELLS = ("bash", "zsh", "fish")


def _common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The options every verb takes too, before or after it. Below the top they default to
    SUPPRESS, so a verb's parser never overwrites what was given before the verb."""
    default = False if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="log what the library does")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="print less: no progress, no `ok` or `reformatted` lines (diagnostics, results and "
                             "errors are still printed)")
    parser.add_argument("--version", action="version", version=f"icldsl {__version__}",
                        help="print the version of icldsl and exit")


class _Parser(argparse.ArgumentParser):
    """A parser that, given a verb it does not know, names the verb that was meant."""

    verbs: tuple[str, ...] = ()

    def parse_args(self, args=None, namespace=None):  # noqa: ANN001, ANN201 - argparse's signature
        argv = sys.argv[1:] if args is None else list(args)
        # Before the verb come only flags (-h, -v, -q, --version): the first other word is the verb.
        word = next((a for a in argv if not a.startswith("-")), None)
        if self.verbs and word is not None and word not in self.verbs:
            import difflib  # here: only a mistyped verb needs it

            meant = difflib.get_close_matches(word, self.verbs, n=1, cutoff=0.6)
            if meant:
                self.error(f"unknown verb {word!r}; did you mean `{meant[0]}`?")
        return super().parse_args(args, namespace)


class _Verbs:
    """Adds verbs whose parsers take the common options."""

    def __init__(self, parent: argparse.ArgumentParser, dest: str, metavar: str) -> None:
        self.group = parent.add_subparsers(dest=dest, required=True, metavar=metavar)
        self.names: list[str] = []

    def add_parser(self, name: str, **kwargs) -> argparse.ArgumentParser:
        parser = self.group.add_parser(name, **kwargs)
        _common(parser, top=False)
        self.names.append(name)
        return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="icldsl", description="Train LM programs declared in .icl files.",
                     epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(parser, top=True)
    verbs = _Verbs(parser, "verb", "VERB")

    p = verbs.add_parser("check", help="parse and check files; report every mistake",
                         description="Parse and check .icl files without calling any LM.")
    p.add_argument("files", nargs="+", metavar="FILE", help=".icl files to check (- for standard input)")
    p.add_argument("--format", choices=("full", "concise", "json", "github"), default="full",
                   help="full: source line and caret; concise: one line per diagnostic; json: one JSON "
                        "document on standard output (schema: docs/diagnostics.md); github: GitHub Actions "
                        "annotations on standard output")
    p.add_argument("--no-data", dest="data", action="store_false",
                   help="open no data file (by default a missing file, or columns that cannot fill the program's "
                        "fields, is an error, and a missing folder a warning)")
    p.set_defaults(command="checking.cmd_check")

    p = verbs.add_parser("fit", help="evaluate, train, evaluate again, write the artifact",
                         description="Evaluate the untrained program on the test set, train it as the train "
                                     "block says, evaluate it again, and write the frozen artifact. Then, beside it, "
                                     "<stem>.report.html and the plots <stem>.{graph,history,comparison}.png (and "
                                     "<stem>.runs.png with runs above 1), where <stem> is the artifact's name "
                                     "without .artifact.json; a plot that cannot be drawn is a warning.")
    p.add_argument("file", metavar="FILE", help="the .icl file with the program, its data and a train block "
                                                 "(- for standard input)")
    p.add_argument("--program", help="which train block, by program name (default: the first)")
    p.add_argument("-o", "--output", help="artifact path (default: <program>.artifact.json; - for standard "
                                          "output, with the summary on stderr and nothing written beside it)")
    p.add_argument("--no-report", action="store_true", help="write only the artifact: no plots, no report.html")
    p.add_argument("--restart", action="store_true",
                   help="ignore the checkpoint an interrupted fit left (<stem>.checkpoint.json) and start over")
    p.add_argument("--sign", action="store_true",
                   help=f"sign the artifact (HMAC-SHA256) with the key in ${SIGNING_KEY_ENV}")
    _cache_flags(p)
    _trace_flag(p)
    p.set_defaults(command="training.cmd_fit")

    p = verbs.add_parser("eval", help="score a program on its test set",
                         description="Score the untrained program (with the string bounds fit takes from the "
                                     "training data), or a trained artifact, on the test split of the train "
                                     "block's data.")
    p.add_argument("file", metavar="FILE", help="the .icl file with the program, its data and a train block "
                                                 "(- for standard input)")
    p.add_argument("--artifact", help="evaluate this trained artifact instead of the untrained program "
                                      "(- for standard input)")
    p.add_argument("--program", help="which train block, by program name (default: the first)")
    _deploy_flags(p)
    _cache_flags(p)
    _trace_flag(p)
    p.set_defaults(command="training.cmd_eval")

    p = verbs.add_parser("fmt", help="rewrite files in the canonical layout",
                         description="Rewrite .icl files in one canonical layout, keeping comments. "
                                     "Formatting twice changes nothing.")
    p.add_argument("files", nargs="+", metavar="FILE",
                   help=".icl files to rewrite in place (- reads standard input and writes standard output)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    p.add_argument("--diff", action="store_true", help="print what would change; exit 1 if anything would")
    p.set_defaults(command="checking.cmd_fmt")

    p = verbs.add_parser("render", help="show the messages every LM step would send, without an LM",
                         description="Print the exact messages each LM step would send: its instructions, "
                                     "output schema, few-shot examples and input, and the length bound of each "
                                     "string field of its answer. No LM is called. Fields that earlier steps "
                                     "would fill show as <step.field>.")
    p.add_argument("file", metavar="FILE", help="the .icl file with the program (- for standard input)")
    p.add_argument("--artifact", help="use the instructions and examples this trained artifact learned "
                                      "(- for standard input)")
    p.add_argument("--input", help="the program's input as a JSON object (default: placeholders)")
    p.add_argument("--program", help="which program (default: the first)")
    p.set_defaults(command="running.cmd_render")

    p = verbs.add_parser("run", help="run an artifact on one input, or on every row of a file",
                         description="Run a frozen artifact. With --input '{...}' on one input, printing its "
                                     "output as JSON. With --input FILE (JSONL or CSV; - for stdin) on every row, "
                                     "writing one JSON line per row to --output: {\"row\": N, \"output\": {...}} "
                                     "or {\"row\": N, \"error\": \"...\"}, in the order rows finish. Running the "
                                     "same command again skips the rows the output holds. Exit status 1 when a row "
                                     "failed, 75 when another run is writing the same --output.")
    p.add_argument("artifact", metavar="ARTIFACT", help="the artifact `fit` wrote (- for standard input)")
    p.add_argument("--input", required=True, metavar="JSON|FILE|-",
                   help="one input as a JSON object, or a .jsonl/.csv file of inputs, or - for JSONL on stdin")
    p.add_argument("--output", default="-", metavar="FILE|-",
                   help="where the predictions of a file's rows go, one JSON line each (default: stdout)")
    p.add_argument("--format", choices=("jsonl", "csv"), help="the input's format (default: from its suffix)")
    p.add_argument("--concurrency", type=_concurrency, default=8, metavar="N",
                   help=f"rows in flight at once (default 8, at most {MAX_CONCURRENCY})")
    p.add_argument("--id", metavar="FIELD", help="copy this field of each row into its output line as `id`")
    p.add_argument("--retry-failed", action="store_true",
                   help="drop the rows that failed from --output and run them again")
    p.add_argument("--stop-after", type=int, default=100, metavar="N",
                   help="stop when N rows in a row fail to predict, as when no LM can be reached (default 100; "
                        "0: never)")
    _deploy_flags(p)
    _cache_flags(p)
    _trace_flag(p)
    p.set_defaults(command="running.cmd_run")

    p = verbs.add_parser("plan", help="the LM calls and tokens a fit will take, without spending any",
                         description="Print, per phase of the fit (test before training, validation, each "
                                     "epoch, optimizer extras, test after training), the program runs, LM calls "
                                     "(an upper bound with a branch or an agent) and estimated prompt and "
                                     "completion tokens (a local LM's own tokenizer, else characters / 4), "
                                     "whether the train block's budget covers training, and each step's string "
                                     "bounds, with a warning when max_tokens cannot hold them. Loads the data; "
                                     "calls no LM.")
    p.add_argument("file", metavar="FILE", help="the .icl file with the program, its data and a train block "
                                                 "(- for standard input)")
    p.add_argument("--program", help="which train block, by program name (default: the first)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(command="training.cmd_plan")

    p = verbs.add_parser("diff", help="what changed between two artifacts",
                         description="Show what changed from artifact A to B: each step's instructions (a "
                                     "unified diff), examples added, removed or changed (by dataset row, with "
                                     "their rewards) and frozen flag; test scores (mean and std per metric); "
                                     "settings, source hash, data fingerprints. "
                                     "Exit status 0 when they are identical, 1 when they differ, 2 when one "
                                     "cannot be read.")
    p.add_argument("a", metavar="A", help="the artifact before (- for standard input)")
    p.add_argument("b", metavar="B", help="the artifact after (- for standard input)")
    p.add_argument("--json", action="store_true", help="print the differences as JSON")
    p.set_defaults(command="artifacts.cmd_diff")

    p = verbs.add_parser("graph", help="draw a program's graph (PNG or SVG)",
                         description="Draw the program's steps, models and wiring, trainable steps marked. "
                                     "FILE is a .icl file or an artifact (whose learned state is shown).")
    p.add_argument("file", metavar="FILE", help="a .icl file or an artifact (- for standard input, either)")
    p.add_argument("-o", "--output", help="a .png or .svg path (default: <program>.graph.png; - for standard "
                                          "output)")
    p.add_argument("--format", choices=("png", "svg"),
                   help="the picture's format (default: from the --output suffix, else png)")
    p.add_argument("--program", help="which program of a .icl file (default: each one)")
    p.set_defaults(command="artifacts.cmd_graph")

    p = verbs.add_parser("plot", help="redraw the plots of an artifact",
                         description="Redraw the plots that fit wrote beside an artifact: "
                                     "<stem>.{graph,history,comparison}.png (or .svg), and <stem>.runs.png when "
                                     "the test set was scored more than once.")
    p.add_argument("artifact", metavar="ARTIFACT",
                   help="the artifact `fit` wrote (- for standard input: the plots are named after its program)")
    p.add_argument("-o", "--output-dir", metavar="DIR",
                   help="where to write them (default: beside the artifact, or the working directory)")
    p.add_argument("--format", choices=("png", "svg"), default="png", help="the plots' format (default: png)")
    p.add_argument("--report", action="store_true",
                   help="also write <stem>.report.html (without predictions: the artifact does not keep them)")
    p.set_defaults(command="artifacts.cmd_plot")

    p = verbs.add_parser("lsp", help="run the language server (for editors) over stdin and stdout",
                         description="Run the icldsl language server, speaking the Language Server Protocol "
                                     "over standard input and output: diagnostics as you type, hover, go to "
                                     "definition, references, completion, document symbols and formatting. "
                                     "Editors start it; see editors/vscode. Needs the `lsp` extra.")
    p.set_defaults(command="checking.cmd_lsp")

    p = verbs.add_parser("cache", help="show or clear the cache of LM calls",
                         description=f"The on-disk cache of LM calls that fit, eval and run share: "
                                     f"lm.sqlite3 in ${CACHE_DIR_ENV}, else in $XDG_CACHE_HOME/icldsl, else in "
                                     "~/.cache/icldsl.")
    actions = _Verbs(p, "action", "ACTION")
    a = actions.add_parser("stats", help="entries, size on disk, hits and misses per model",
                           description="Show what the LM cache holds: entries, size on disk, hits and misses, "
                                       "per model.")
    a.set_defaults(command="cache.cmd_cache_stats")
    a = actions.add_parser("clear", help="delete cached calls", description="Delete every cached LM call, or "
                                                                               "those of one model.")
    a.add_argument("--model", help="only this model's calls, as `provider/model` (see `icldsl cache stats`)")
    a.set_defaults(command="cache.cmd_cache_clear")

    p = verbs.add_parser("init", help="write a starter project: a program, its data, how to fit and run it",
                         description="Write a small runnable project into DIR: a program (classify.icl) that "
                                     "labels customer messages, its data (messages.jsonl) and a README.md with "
                                     "the two commands that fit and run it on the bundled local model. Existing "
                                     "files are never overwritten.")
    p.add_argument("dir", nargs="?", default=".", metavar="DIR",
                   help="the folder to write into, created if need be (default: the working directory)")
    p.set_defaults(command="project.cmd_init")

    p = verbs.add_parser("completion", help="print a shell completion script (bash, zsh or fish)",
                         description="Print a script that makes the shell complete icldsl's verbs, options and "
                                     "their values. bash: eval \"$(icldsl completion bash)\" in ~/.bashrc; zsh: "
                                     "eval \"$(icldsl completion zsh)\" in ~/.zshrc after compinit; fish: "
                                     "icldsl completion fish > ~/.config/fish/completions/icldsl.fish.")
    p.add_argument("shell", choices=SHELLS, metavar="SHELL", help=f"one of {', '.join(SHELLS)}")
    p.set_defaults(command="project.cmd_completion")
    parser.verbs = tuple(verbs.names)
    return parser


def _epilog() -> str:
    """The top-level help's closing lines: the `-` convention and what each exit status means."""
    lines = ["Wherever a verb reads or writes a file, - means standard input or output.", "", "exit status:"]
    for status, meaning in EXIT_STATUSES:
        wrapped = textwrap.wrap(meaning, width=72)
        lines.append(f"  {status:<5}{wrapped[0]}")
        lines.extend(f"       {line}" for line in wrapped[1:])
    return "\n".join(lines)


def _deploy_flags(p: argparse.ArgumentParser) -> None:
    """How an artifact is trusted and where its LM requests go."""
    p.add_argument("--verify", action="store_true",
                   help=f"refuse an artifact not signed with the key in ${SIGNING_KEY_ENV}")
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


def _concurrency(text: str) -> int:
    value = _positive(text)
    if value > MAX_CONCURRENCY:
        raise argparse.ArgumentTypeError(f"at most {MAX_CONCURRENCY} rows may be in flight at once, got {text!r}")
    return value


def _trace_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trace", metavar="FILE",
                   help="append one JSON line per LM call to FILE: program, step, LM, messages, answer, parsed "
                        "output or error, usage, latency, cache, retries, which fallback answered")


def _cache_flags(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--no-cache", action="store_true", help="neither read nor write the LM cache")
    group.add_argument("--offline", action="store_true",
                       help="answer every LM call from the cache; a call missing from it fails instead of being made")
