"""What the language server changes for the editor, through a real LSP client: the fixes of
diagnostics (code actions), rename, and the preview of `icldsl render` (a command)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException

from tests.lsp_client import Session, language_server
from tests.lsp.test_lsp import ROOT, at, run

PROGRAM = """model Review { txt: str "The review\tas written" }
model Verdict { label: enum("positive", "negative") }
lm judge = "local/smollm2-135m" { temperature: 0.0 }
program classify {
    input  r: Review
    v = generate Verdict from r using jduge
    output v
}
data reviews = csv("data/review.csv")
train classify on reviews {
    reward     exact_match()
    optimizer  random_few_shot(nb_max_exemples: 2)
}
"""


def applied(text: str, edits: list[lsp.TextEdit]) -> str:
    """`text` with the edits made (positions count characters: the texts here are ASCII)."""
    lines = text.split("\n")

    def offset(p: lsp.Position) -> int:
        return sum(len(line) + 1 for line in lines[:p.line]) + p.character

    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[:offset(edit.range.start)] + edit.new_text + text[offset(edit.range.end):]
    return text


def everywhere(text: str) -> lsp.Range:
    return lsp.Range(lsp.Position(0, 0), lsp.Position(text.count("\n") + 1, 0))


async def actions(s: Session, uri: str, text: str, found: list[lsp.Diagnostic]) -> list[lsp.CodeAction]:
    return await s.client.text_document_code_action_async(lsp.CodeActionParams(
        s.doc(uri), everywhere(text), lsp.CodeActionContext(diagnostics=found)))


def test_every_fix_is_a_code_action_that_mends_the_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reviews.csv").write_text("text,label\nnice,positive\n", encoding="utf-8")
    path = tmp_path / "reviews.icl"

    async def session() -> None:
        async with language_server(tmp_path) as s:
            text = PROGRAM
            uri = s.open(path, text)
            found = await s.diagnostics(uri, 1)
            titles = []
            while found:  # one fix at a time, as a user takes them; each is checked again
                offered = await actions(s, uri, text, found)
                assert offered, f"no fix offered for {[d.message for d in found]}"
                action = offered[0]
                assert action.kind == lsp.CodeActionKind.QuickFix and action.diagnostics
                titles.append(action.title)
                text = applied(text, action.edit.changes[uri])
                found = await s.diagnostics(uri, s.replace(uri, text))
            assert titles == [
                "Write `\\t`",  # a tab inside a string: a syntax error, alone until fixed
                "Replace `jduge` with `judge`",
                "Replace `nb_max_exemples` with `nb_max_examples`",
                "Replace `data/review.csv` with `data/reviews.csv`",
                'Add `map: { txt: "text" }`',
            ]
            assert 'csv("data/reviews.csv", map: { txt: "text" })' in text and "The review\\tas written" in text

    run(session)


def test_rename_changes_every_use_and_refuses_what_it_cannot(tmp_path: Path) -> None:
    path = tmp_path / "support.icl"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tickets.jsonl").write_bytes((ROOT / "programs" / "data" / "tickets.jsonl").read_bytes())
    text = (ROOT / "programs" / "support.icl").read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")

    async def session() -> None:
        async with language_server(tmp_path) as s:
            uri = s.open(path, text)
            assert await s.diagnostics(uri, 1) == []
            where = at(text, "decide Route", 8)
            prepared = await s.client.text_document_prepare_rename_async(lsp.PrepareRenameParams(s.doc(uri), where))
            start = at(text, "decide Route", len("decide "))  # the cursor was inside the name
            assert prepared == lsp.Range(start, lsp.Position(start.line, start.character + len("Route")))
            edit = await s.client.text_document_rename_async(lsp.RenameParams(s.doc(uri), where, "Triage"))
            renamed = applied(text, edit.changes[uri])
            assert "model Triage {" in renamed and "decide Triage from" in renamed and renamed.count("Triage") == 2
            assert await s.diagnostics(uri, s.replace(uri, renamed)) == []
            step = at(renamed, "route.team", 1)
            edit = await s.client.text_document_rename_async(lsp.RenameParams(s.doc(uri), step, "triage"))
            again = applied(renamed, edit.changes[uri])
            assert "triage.team" in again and "triage  = frozen decide Triage" in again
            assert await s.diagnostics(uri, s.replace(uri, again)) == []
            for position, new, refusal in [(at(again, "triage.team", 8), "squad", "is not renamed"),
                                           (at(again, "triage  = frozen"), "model", "cannot be a name here"),
                                           (at(again, "triage  = frozen"), "ticket", "already"),
                                           (at(again, "triage  = frozen"), "9lives", "is not a name")]:
                with pytest.raises(JsonRpcException, match=refusal):
                    await s.client.text_document_rename_async(lsp.RenameParams(s.doc(uri), position, new))

    run(session)


def test_the_render_command_shows_what_icldsl_render_prints(tmp_path: Path) -> None:
    path = tmp_path / "support.icl"
    text = (ROOT / "programs" / "support.icl").read_text(encoding="utf-8")
    path.write_text(text, encoding="utf-8")
    given = '{"text": "My card was charged twice"}'
    printed = subprocess.run([sys.executable, "-m", "icldsl", "render", str(path), "--input", given],
                             capture_output=True, text=True, check=True, cwd=tmp_path,
                             env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout

    async def session() -> None:
        async with language_server(tmp_path) as s:
            uri = s.open(path, text)
            await s.diagnostics(uri, 1)
            shown = await s.client.workspace_execute_command_async(lsp.ExecuteCommandParams(
                "icldsl.render", [uri, {"input": {"text": "My card was charged twice"}}]))
            assert shown["text"] == printed and shown["program"] == "support"
            assert shown["steps"][0]["messages"][-1]["role"] == "user"
            assert "My card was charged twice" in shown["steps"][0]["messages"][-1]["content"]
            wrong = await s.client.workspace_execute_command_async(lsp.ExecuteCommandParams(
                "icldsl.render", [uri, {"input": {"txt": "x"}}]))
            assert "text" in wrong["error"] and "steps" not in wrong
            missing = await s.client.workspace_execute_command_async(lsp.ExecuteCommandParams(
                "icldsl.render", [uri, {"program": "nope"}]))
            assert missing == {"error": "no program `nope` in the file (programs: support)"}

    run(session)
