"""The command line behaves as users' hands expect: --version, -v anywhere, NO_COLOR and
FORCE_COLOR, `-` for standard input and output, a quiet exit on a closed pipe, help for
every argument, shell completion, and `icldsl init`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import icldsl
from icldsl import artifact, paths
from icldsl.language import options
from icldsl.cli import arguments, main
from icldsl.cli.arguments import build_parser
from icldsl.cli.project import STARTER, STARTER_PROGRAM
from icldsl.language.compiler import compile_file
from icldsl.errors import EXIT_CLOSED_PIPE
from tests.scripted import ScriptedLM
from tests.cli.test_cli import GSM8K_ICL, ROOT

BAD = "model A {\n    x: strr\n}\n"


def icldsl_cmd(*args: str, stdin: bytes | str | None = None, env: dict | None = None,
               cwd: Path | None = None) -> subprocess.CompletedProcess:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    result = subprocess.run([sys.executable, "-m", "icldsl", *args], input=data, capture_output=True,
                            cwd=cwd or ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert b"Traceback" not in result.stderr, result.stderr.decode()
    return result


def parsers(parser: argparse.ArgumentParser, path: str = "icldsl"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from parsers(sub, f"{path} {name}")


# ---- conventions --------------------------------------------------------------------------------


def test_version_before_or_after_the_verb(capsys) -> None:
    for argv in (["--version"], ["check", "--version"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
        assert capsys.readouterr().out == f"icldsl {icldsl.__version__}\n"


@pytest.mark.parametrize("argv", [["-v", "check", "x.icl"], ["check", "-v", "x.icl"], ["check", "x.icl", "--verbose"],
                                  ["cache", "-v", "stats"], ["cache", "stats", "-v"]])
def test_verbose_anywhere(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).verbose is True


def test_not_verbose_unless_asked() -> None:
    assert build_parser().parse_args(["check", "x.icl"]).verbose is False
    assert build_parser().parse_args(["cache", "stats"]).verbose is False


def test_quiet_on_every_verb_before_or_after_it() -> None:
    for path, parser in parsers(build_parser()):
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue  # `icldsl` and `icldsl cache`: the verbs below them are tried
        words = path.split()[1:]
        positional = [a for a in parser._actions if not a.option_strings and a.required]
        required = [word for a in parser._actions if a.option_strings and a.required for word in (a.option_strings[0], "x")]
        argv = [*words, *required, *(["x"] * len(positional))]
        if path.endswith("completion"):
            argv = [*words, "bash"]
        assert build_parser().parse_args([*argv, "-q"]).quiet is True, path
        assert build_parser().parse_args(["-q", *argv]).quiet is True, path
        assert build_parser().parse_args(argv).quiet is False, path


def test_check_quiet_prints_diagnostics_but_no_ok(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.icl"
    good.write_text(GSM8K_ICL.read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["check", "-q", str(good)]) == 0
    assert capsys.readouterr().err == ""
    bad = tmp_path / "bad.icl"
    bad.write_text("model A {\n    x: strr\n}\n", encoding="utf-8")
    assert main(["check", "-q", str(bad)]) == 1
    assert "unknown type `strr`" in capsys.readouterr().err


def test_a_misspelled_verb_is_named(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["-v", "chek", "x.icl"])
    assert exc.value.code == 2
    assert "unknown verb 'chek'; did you mean `check`?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["programs/x.icl"])  # nothing close: argparse's own list of verbs
    assert "invalid choice" in capsys.readouterr().err


def test_every_argument_of_every_verb_has_help() -> None:
    missing = [f"{path} {action.dest}" for path, parser in parsers(build_parser()) for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()]
    assert missing == []
    verbs = [path for path, _ in parsers(build_parser())]
    assert {"icldsl init", "icldsl completion", "icldsl cache clear"} <= set(verbs)


def test_help_names_the_variables_the_library_reads() -> None:
    assert arguments.SIGNING_KEY_ENV == artifact.SIGNING_KEY_ENV
    assert arguments.CACHE_DIR_ENV == paths.CACHE_DIR_ENV
    assert arguments.MAX_CONCURRENCY == options.MAX_CONCURRENCY


@pytest.mark.parametrize(("env", "coloured"), [({}, False), ({"FORCE_COLOR": "1"}, True),
                                              ({"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
                                              ({"NO_COLOR": ""}, False)])
def test_colour_follows_no_color_and_force_color(tmp_path: Path, env: dict, coloured: bool) -> None:
    (tmp_path / "bad.icl").write_text(BAD, encoding="utf-8")
    base = {k: "" for k in ("NO_COLOR", "FORCE_COLOR")}
    result = icldsl_cmd("check", str(tmp_path / "bad.icl"), env={**base, **env})
    assert result.returncode == 1 and b"error[undefined-name]" in result.stderr.replace(b"\x1b[0m", b"").replace(
        b"\x1b[1m", b"").replace(b"\x1b[31m", b"")
    assert (b"\x1b[" in result.stderr) is coloured


# ---- `-` for standard input and output ------------------------------------------------------------


def test_check_reads_standard_input() -> None:
    ok = icldsl_cmd("check", "-", stdin=GSM8K_ICL.read_bytes())
    assert ok.returncode == 0 and ok.stderr.decode() == "<stdin>: ok\n"
    bad = icldsl_cmd("check", "--format", "concise", "-", stdin=BAD)
    assert bad.returncode == 1 and bad.stderr.decode().startswith(  # errors before warnings
        "<stdin>:2:8: error[undefined-name]: unknown type `strr`")


def test_fmt_of_standard_input_writes_standard_output() -> None:
    messy = "model   A {  x: str }\n"
    result = icldsl_cmd("fmt", "-", stdin=messy)
    assert result.returncode == 0 and result.stdout.decode() == "model A {\n    x: str\n}\n"
    again = icldsl_cmd("fmt", "-", stdin=result.stdout)
    assert again.stdout == result.stdout and again.stderr == b""
    check = icldsl_cmd("fmt", "--check", "-", stdin=messy)
    assert check.returncode == 1 and check.stdout == b"" and b"would reformat <stdin>" in check.stderr


def test_standard_input_is_read_once() -> None:
    result = icldsl_cmd("check", "-", "-", stdin=BAD)
    assert result.returncode == 1
    assert result.stderr.decode() == "error: standard input can be read only once, but FILE 1 and FILE 2 are both -\n"
    assert icldsl_cmd("run", "-", "--input", "-").returncode == 1


def test_graph_from_and_to_standard_streams() -> None:
    png = icldsl_cmd("graph", "-", "-o", "-", stdin=(ROOT / "programs" / "support.icl").read_bytes())
    assert png.returncode == 0 and png.stdout.startswith(b"\x89PNG\r\n\x1a\n")
    svg = icldsl_cmd("graph", str(ROOT / "programs" / "support.icl"), "-o", "-", "--format", "svg")
    assert svg.returncode == 0 and b"<svg" in svg.stdout
    clash = icldsl_cmd("graph", str(GSM8K_ICL), "-o", "g.png", "--format", "svg")
    assert clash.returncode == 1 and b"--format svg does not fit g.png" in clash.stderr


def test_fit_to_standard_output_then_every_reader_of_an_artifact_from_standard_input(project) -> None:
    tmp_path, _ = project
    fit = icldsl_cmd("fit", "-", "-o", "-", "-q", stdin=(tmp_path / "adder.icl").read_bytes(), cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr
    assert b"trained - untrained" in fit.stderr and b"wrote the artifact to standard output" in fit.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adder.icl", "test.jsonl", "train.jsonl"]  # nothing beside
    (tmp_path / "a.json").write_bytes(fit.stdout)
    doc = artifact.read(tmp_path / "a.json")
    assert doc["training"]["scores"]["trained"]["reward_mean"] == 1.0

    run = icldsl_cmd("run", "-", "--input", '{"question": "20+22"}', stdin=fit.stdout, cwd=tmp_path)
    assert run.returncode == 0 and json.loads(run.stdout) == {"answer": 42.0}
    evaluated = icldsl_cmd("eval", "adder.icl", "--artifact", "-", "-q", stdin=fit.stdout, cwd=tmp_path)
    assert evaluated.returncode == 0 and b"1.000" in evaluated.stdout
    same = icldsl_cmd("diff", "-", "a.json", stdin=fit.stdout, cwd=tmp_path)
    assert same.returncode == 0
    graph = icldsl_cmd("graph", "-", "-o", "-", stdin=fit.stdout, cwd=tmp_path)
    assert graph.stdout.startswith(b"\x89PNG")
    plot = icldsl_cmd("plot", "-", "-o", "figs", stdin=fit.stdout, cwd=tmp_path)
    assert plot.returncode == 0 and (tmp_path / "figs" / "adder.history.png").is_file()
    tampered = icldsl_cmd("run", "-", "--input", '{"question": "1+1"}', stdin=fit.stdout.replace(b"Their sum", b"x"))
    assert tampered.returncode == 1 and b"<stdin> has been modified" in tampered.stderr


# ---- a reader that closes the pipe early --------------------------------------------------------------


def closed_pipe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The command with its standard output a pipe whose reader has gone (as `| head` leaves it)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "icldsl", *args], stdout=write, stderr=subprocess.PIPE,
                              text=True, cwd=cwd, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        os.close(write)


def test_a_closed_pipe_ends_the_command_quietly(project) -> None:
    tmp_path, _ = project
    (tmp_path / "rows.jsonl").write_text("".join(f'{{"question": "{i}+1"}}\n' for i in range(30)), encoding="utf-8")
    assert icldsl_cmd("fit", "adder.icl", "-q", "--no-report", cwd=tmp_path).returncode == 0
    for args in (("eval", "adder.icl", "-q"), ("run", "adder.artifact.json", "--input", "rows.jsonl", "-q"),
                 ("completion", "bash")):
        result = closed_pipe(*args, cwd=tmp_path)
        assert result.returncode == EXIT_CLOSED_PIPE, (args, result.stderr)
        assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr, result.stderr


# ---- shell completion -------------------------------------------------------------------------------


def completion(shell: str) -> str:
    result = icldsl_cmd("completion", shell)
    assert result.returncode == 0
    return result.stdout.decode()


def test_bash_completion_parses_and_completes(tmp_path: Path) -> None:
    script = tmp_path / "icldsl.bash"
    script.write_text(completion("bash"), encoding="utf-8")
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    probe = f"""source {script}
t() {{ COMP_WORDS=("$@"); COMP_CWORD=$(( ${{#COMP_WORDS[@]}} - 1 )); COMPREPLY=(); _icldsl; echo "${{COMPREPLY[*]}}"; }}
t icldsl ch
t icldsl -v ""
t icldsl check --format ""
t icldsl cache ""
t icldsl cache clear --m
t icldsl completion ""
t icldsl run x --format c
complete -p icldsl
"""
    lines = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True).stdout.splitlines()
    verbs = [name for name, _ in build_parser()._subparsers._group_actions[0].choices.items()]
    assert lines == ["check", " ".join(verbs), "full concise json github", "stats clear", "--model", "bash zsh fish",
                     "csv", "complete -o default -F _icldsl icldsl"]


@pytest.mark.skipif(not shutil.which("zsh"), reason="zsh is not installed (apt-get install zsh)")
def test_zsh_completion_parses_and_registers(tmp_path: Path) -> None:
    script = tmp_path / "_icldsl"
    script.write_text(completion("zsh"), encoding="utf-8")
    assert subprocess.run(["zsh", "-n", str(script)], capture_output=True).returncode == 0
    registered = subprocess.run(["zsh", "-f", "-c", f'compdef() {{ echo "compdef $*"; }}; source {script}; '
                                                   "whence -w _icldsl _icldsl_cache _icldsl_fit"],
                                capture_output=True, text=True, check=True).stdout.splitlines()
    assert registered == ["compdef _icldsl icldsl", "_icldsl: function", "_icldsl_cache: function",
                          "_icldsl_fit: function"]


@pytest.mark.skipif(not shutil.which("fish"), reason="fish is not installed (apt-get install fish)")
def test_fish_completion_parses_and_completes(tmp_path: Path) -> None:
    script = tmp_path / "icldsl.fish"
    script.write_text(completion("fish"), encoding="utf-8")
    assert subprocess.run(["fish", "--no-execute", str(script)], capture_output=True).returncode == 0

    def complete(line: str) -> list[str]:
        out = subprocess.run(["fish", "--no-config", "-c", f"source {script}; complete -C '{line}'"],
                             capture_output=True, text=True, check=True).stdout
        return [row.split("\t")[0] for row in out.splitlines()]

    assert complete("icldsl ch") == ["check"]
    assert complete("icldsl check --format ") == ["concise", "full", "github", "json"]
    assert complete("icldsl cache ") == ["clear", "stats"]
    assert "--model" in complete("icldsl cache clear --")
    assert "--no-report" in complete("icldsl fit --")


# ---- icldsl init ---------------------------------------------------------------------------------------


def test_init_writes_a_starter_that_checks_and_says_how_to_fit_and_run_it(tmp_path: Path) -> None:
    result = icldsl_cmd("init", "proj", cwd=tmp_path)
    assert result.returncode == 0
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == sorted(STARTER)
    said = result.stderr.decode()
    fit_line = "icldsl fit classify.icl"
    run_line = f"icldsl run {STARTER_PROGRAM}.artifact.json --input '{{\"text\": \"My parcel never arrived\"}}'"
    assert "cd proj" in said and fit_line in said and run_line in said
    readme = (tmp_path / "proj" / "README.md").read_text(encoding="utf-8")
    assert fit_line in readme and run_line in readme  # the same two commands
    check = icldsl_cmd("check", "proj/classify.icl", cwd=tmp_path)
    assert check.returncode == 0 and check.stderr == b"proj/classify.icl: ok\n"  # not even a warning

    again = icldsl_cmd("init", "proj", cwd=tmp_path)
    assert again.returncode == 1 and b"proj/classify.icl exists already" in again.stderr


def test_the_starter_fits_against_a_scripted_lm(tmp_path: Path) -> None:
    """The model answers the team most of its examples show: untrained it has none and says
    billing; trained, it gets the 4 training messages nearest each input."""
    assert main(["init", str(tmp_path)]) == 0
    compiled = compile_file(tmp_path / "classify.icl")

    def majority_of_examples(request) -> dict:
        shown = Counter(json.loads(m.content)["team"] for m in request.messages if m.role == "assistant")
        return {"team": shown.most_common(1)[0][0] if shown else "billing"}

    fit = icldsl.fit(compiled, clients={"small": ScriptedLM(majority_of_examples)}, write=False, report=False).report
    untrained, trained = (fit.artifact["training"]["scores"][k]["reward_mean"] for k in ("untrained", "trained"))
    assert untrained == 6 / 25 and trained > 0.5, (untrained, trained)  # 6 of the 25 test messages are billing
    (state,) = fit.artifact["states"].values()
    assert state["retrieval"]["k"] == 4 and len(state["retrieval"]["examples"]) == fit.sizes["train"]
