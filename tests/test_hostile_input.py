"""Hostile input through every scanner and parser: 4 MB of quotes, escapes, brackets and
comments is read in time linear in its size (a bound in CPU seconds, generous for a loaded
machine: the quadratic scans this guards against took minutes to hours at this size), and
ends in icldsl's own error or a result, never a traceback. The language server answers other
documents and `exit` while a huge one is being checked."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from lsprotocol import types as lsp

from icldsl import jsontext
from icldsl.language import parser
from icldsl.cli import main
from icldsl.language.diagnostics import CheckError
from icldsl.language.formatter import format_source
from icldsl.lm.repair import RepairError, read_object
from icldsl.lsp.incremental import IncrementalParser
from icldsl.language.source import Source
from tests.lsp_client import language_server

SIZE = 4 * 2**20  # the most `check` reads of a file
CPU_BOUND = 5.0  # seconds; each case takes well under 1.5 s on an idle machine

# Text that once made a scan quadratic or slow, each repeated to SIZE.
ICL = {
    "unclosed quote, then escaped quotes": ('model A {\n  x: str "', '\\"'),
    "unclosed quote, then backslashes": ('model A {\n  x: str "', "\\\\"),
    "quotes": ("", '"'),
    "a quote on each line": ("", '"\n'),
    "escaped quotes on each line": ("", '"\\"\n'),
    "opening brackets": ("", "(["),
    "closing brackets": ("", "]})"),
    "balanced brackets, then deep": ("", "()"),
    "comment lines": ("", "//\n"),
    "one long comment": ("// ", "//"),
    "one long name": ("model ", "a"),
    "names": ("", "a "),
    "item keywords": ("", "model\n"),
}


def text_of(start: str, unit: str, size: int = SIZE) -> str:
    return start + unit * ((size - len(start)) // len(unit))


def cpu_seconds(action) -> float:
    start = time.process_time()
    action()
    return time.process_time() - start


def refused_or_read(action, *errors: type[Exception]):
    def run() -> None:
        try:
            action()
        except errors:
            pass
    return run


@pytest.mark.parametrize("case", ICL)
def test_check_reads_4mb_of_hostile_text_in_linear_time(case: str) -> None:
    text = text_of(*ICL[case])
    if case.endswith("then deep"):
        text = text[: SIZE - 200] + "(" * 100
    source = Source("hostile.icl", text)
    took = cpu_seconds(refused_or_read(lambda: parser.parse(source), CheckError))
    assert took < CPU_BOUND, f"{case}: {took:.2f} s"


EDITOR = ["unclosed quote, then escaped quotes", "quotes", "closing brackets", "comment lines", "item keywords",
          "escaped quotes on each line"]


@pytest.mark.parametrize("case", EDITOR)
def test_the_editor_paths_read_4mb_of_hostile_text_in_linear_time(case: str) -> None:
    """The language server's incremental parse (which splits the file into items), the
    formatter (which keeps every comment), and the tokens an editor colours. A comment every
    3 bytes is 1.4 million comments to keep, so the formatter and tokens get them 40 bytes apart."""
    start, unit = ICL[case]
    source = Source("hostile.icl", text_of(start, unit))
    spaced = source if case != "comment lines" else Source("hostile.icl", text_of("", "// a comment, as people write them\n"))
    for action in (lambda: IncrementalParser().parse(source), lambda: format_source(spaced),
                   lambda: parser.tokens(spaced)):
        took = cpu_seconds(refused_or_read(action, CheckError))
        assert took < CPU_BOUND, f"{case}: {took:.2f} s"


def test_a_deep_nesting_after_many_brackets_is_found_where_it_is() -> None:
    text = text_of("", "()", SIZE - 200) + "\n" + "[" * 100
    with pytest.raises(CheckError) as caught:
        parser.parse(Source("hostile.icl", text))
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "nesting-too-deep"
    assert (diagnostic.span.line, diagnostic.span.column) == (2, parser.MAX_DEPTH + 1)


def test_brackets_inside_strings_and_comments_do_not_count() -> None:
    deep = "[" * 100
    text = f'model A {{\n  x: str "{deep}" // {deep}\n}}\n'
    assert parser.parse(Source("ok.icl", text)).items


JSON = {
    "unclosed string, then escaped quotes": ('{"a": "', '\\"'),
    "unclosed string, then backslashes": ('{"a": "', "\\\\"),
    "quotes": ("", '"'),
    "opening brackets": ("", "[{"),
    "closing brackets": ("", "]}"),
    "NaN": ("[", "NaN,"),
    "digits": ("", "9"),
    "escapes": ('"', "\\u00e9"),
}


@pytest.mark.parametrize("case", JSON)
def test_json_text_reads_4mb_of_hostile_text_in_linear_time(case: str) -> None:
    text = text_of(*JSON[case])
    took = cpu_seconds(refused_or_read(lambda: jsontext.loads(text), jsontext.JSONTextError))
    assert took < CPU_BOUND, f"{case}: {took:.2f} s"


def test_an_unclosed_json_string_is_refused_where_it_starts() -> None:
    with pytest.raises(jsontext.JSONTextError) as caught:
        jsontext.loads('{"a": 1,\n "b": "' + '\\"' * 1000)
    assert (caught.value.line, caught.value.column) == (2, 7)


# The LM answer reader works character by character in Python, so 1 MB (far beyond max_tokens).
ANSWERS = {
    "stray quotes before a far comment end": ('{"a": "', '" /*', "*/ x"),
    "quotes": ("{", '"', ""),
    "opening brackets": ("", "{[", ""),
    "comments": ("{", "/*", ""),
    "escaped quotes": ('{"a": "', '\\"', ""),
}


@pytest.mark.parametrize("case", ANSWERS)
def test_the_lm_answer_reader_is_linear(case: str) -> None:
    start, unit, end = ANSWERS[case]
    text = text_of(start, unit, 2**20) + end
    took = cpu_seconds(refused_or_read(lambda: read_object(text), RepairError))
    assert took < CPU_BOUND, f"{case}: {took:.2f} s"


def test_the_language_server_answers_others_and_exits_while_checking_a_huge_document(tmp_path: Path) -> None:
    huge = "model Big {\n" + "  x: str\n" * (SIZE // 10) + "}\n"  # minutes to check: a field at a time
    small = 'model Small {\n  text: str\n}\n'

    async def scenario() -> None:
        async with language_server(tmp_path) as session:
            huge_uri = session.open(tmp_path / "huge.icl", huge)
            await asyncio.sleep(1)  # its check has started
            small_uri = session.open(tmp_path / "small.icl", small)
            found = await session.diagnostics(small_uri, 1, timeout=60)
            assert [d.code for d in found] == ["unused-name"]
            hover = await asyncio.wait_for(session.client.text_document_hover_async(lsp.HoverParams(
                session.doc(small_uri), lsp.Position(0, 7))), 60)
            assert hover is not None and "Small" in hover.contents.value
            assert huge_uri not in session.published  # still being checked
            # leaving the context sends shutdown and exit, and requires exit code 0 within 30 s

    asyncio.run(scenario())


# ---- the front end's own hostile cases (issue 22.10): a diagnostic at the import or tool, never a traceback


def check_json(path: Path, capsys: pytest.CaptureFixture) -> list[dict]:
    assert main(["check", "--format", "json", str(path)]) == 1
    return json.loads(capsys.readouterr().out)["files"][0]["diagnostics"]


@pytest.mark.parametrize("name, reason", [
    ("a\\u0000.icl", "cannot hold a NUL character"),
    ("a" * 5000 + ".icl", "File name too long"),
    ("loop1.icl", "symbolic links go round in a circle"),
])
def test_an_import_of_a_name_no_file_can_have_is_a_diagnostic(tmp_path: Path, capsys, name: str, reason: str) -> None:
    (tmp_path / "loop1.icl").symlink_to(tmp_path / "loop2.icl")
    (tmp_path / "loop2.icl").symlink_to(tmp_path / "loop1.icl")
    main_file = tmp_path / "main.icl"
    main_file.write_text(f'model A {{ x: str }}\nimport "{name}"\n', encoding="utf-8")
    (diagnostic,) = check_json(main_file, capsys)
    assert diagnostic["code"] == "import-error" and reason in diagnostic["message"]
    assert diagnostic["start"] == {"line": 2, "column": 8}
    assert len(diagnostic["message"]) < 200  # a long name is shortened


def test_a_tool_module_nested_past_pythons_parser_is_a_diagnostic(tmp_path: Path, capsys) -> None:
    (tmp_path / "deep_tools.py").write_text("X = " + "+".join(["1"] * 200_000) + "\n\ndef f(x: int) -> int:\n"
                                           "    return x\n", encoding="utf-8")
    program = tmp_path / "agent.icl"
    program.write_text('model Q { question: str }\nmodel A { answer: float }\nlm solver = "local/smollm2-135m"\n'
                       'tool deep = python("deep_tools:f")\nprogram p {\n    input q: Q\n'
                       '    answer = agent A from q tools [deep] max_steps 2\n    output answer\n}\n', encoding="utf-8")
    diagnostics = check_json(program, capsys)
    assert [d["start"] for d in diagnostics] == [{"line": 4, "column": 13}]  # at `python`
    assert "nested too deeply" in diagnostics[0]["message"]


def test_a_diagnostic_on_a_4mb_line_quotes_a_window_of_it(tmp_path: Path, capsys) -> None:
    hostile = tmp_path / "one-line.icl"
    hostile.write_text("model A { x: " + "a" * (SIZE - 100) + " ] }", encoding="utf-8")
    assert main(["check", str(hostile)]) == 1
    shown = capsys.readouterr().err
    assert len(shown) < 2_000
    source_line, caret_line = [line for line in shown.splitlines() if line.startswith(("1 |", "  |")) and
                               ("..." in line or "^" in line)]
    caret = caret_line.index("^")
    assert source_line[caret] == "]" and source_line.endswith("...") is False and "..." in source_line


def test_a_chain_of_thousands_of_steps_is_checked_and_its_cycle_found(tmp_path: Path, capsys) -> None:
    """The step-cycle pass walks with its own stack: 3000 steps each reading the next were a
    RecursionError (a traceback from `icldsl check`)."""
    steps = [f"  s{i} = generate A from s{i + 1}" for i in range(2999)]
    head = 'model A { x: str }\nlm m = "openai/gpt-4.1-mini"\nprogram p {\n  input a: A\n'
    chain = tmp_path / "chain.icl"
    chain.write_text(head + "\n".join([*steps, "  s2999 = generate A from a", "  output s0", "}"]) + "\n")
    assert main(["check", str(chain)]) == 0
    looped = tmp_path / "looped.icl"
    looped.write_text(head + "\n".join([*steps, "  s2999 = generate A from s0", "  output s0", "}"]) + "\n")
    assert main(["check", str(looped)]) == 1
    assert "error[cycle]: step `s0` depends on itself: s0 -> s1 -> s2 -> " in capsys.readouterr().err


def test_a_file_of_1500_imports_reads_each_once(tmp_path: Path) -> None:
    """An import asks a set of the files read, not every file read again (1500 imports took
    25 CPU seconds, each re-resolving every earlier file)."""
    from icldsl.language.imports import load_module

    for i in range(1500):
        (tmp_path / f"m{i}.icl").write_text(f"model M{i} {{ x: str }}\n")
    main_file = tmp_path / "main.icl"
    main_file.write_text("".join(f'import "m{i}.icl"\n' for i in range(1500))
                         + 'import "m0.icl"\nmodel A { x: str }\n')
    loaded: list = []
    took = cpu_seconds(lambda: loaded.append(load_module(Source.from_path(main_file))))
    module, sources = loaded[0]
    assert len(sources) == 1501 and len(module.items) == 1501  # m0.icl imported twice, read once
    assert took < CPU_BOUND, f"{took:.2f} s"
