"""The language server end to end: a real LSP client (pygls's) talks to `python -m icldsl lsp`
over its standard input and output."""

from __future__ import annotations

import asyncio
import random
import shutil
from pathlib import Path

from lsprotocol import types as lsp

from tests.lsp_client import Session, language_server
from tests.program_generator import generate_program, write_data
from tests.test_robustness import SEEDS, mutate

ROOT = Path(__file__).resolve().parents[2]


def at(text: str, marker: str, skip: int = 0) -> lsp.Position:
    """The position `skip` characters into the first `marker` (the texts here are ASCII)."""
    offset = text.index(marker) + skip
    line = text.count("\n", 0, offset)
    return lsp.Position(line, offset - (text.rfind("\n", 0, offset) + 1))


def run(test) -> None:
    asyncio.run(asyncio.wait_for(test(), 300))


def support(tmp_path: Path) -> tuple[Path, str]:
    shutil.copytree(ROOT / "programs" / "data", tmp_path / "data")
    path = tmp_path / "support.icl"
    shutil.copy(ROOT / "programs" / "support.icl", path)
    return path, path.read_text(encoding="utf-8")


async def hover_text(s: Session, uri: str, position: lsp.Position) -> str:
    found = await s.client.text_document_hover_async(lsp.HoverParams(s.doc(uri), position))
    return found.contents.value if found else ""


async def labels(s: Session, uri: str, position: lsp.Position) -> list[str]:
    found = await s.client.text_document_completion_async(lsp.CompletionParams(s.doc(uri), position))
    return [item.label for item in found.items]


def test_hover_definition_references_symbols_formatting(tmp_path: Path) -> None:
    path, text = support(tmp_path)

    async def session() -> None:
        async with language_server(tmp_path) as s:
            uri = s.open(path, text)
            assert await s.diagnostics(uri, 1) == []

            model = await hover_text(s, uri, at(text, "decide Route", 8))
            assert "model Route {" in model and 'team: enum("billing", "technical", "other")' in model
            lm = await hover_text(s, uri, at(text, "lm desk", 4))
            assert "provider `local`" in lm and "temperature: 0.0" in lm and "`n_parallel`" in lm
            field = await hover_text(s, uri, at(text, "route.team", 7))
            assert '"Which team handles the ticket"' in field and "field of model `Route`" in field
            step = await hover_text(s, uri, at(text, "ticket + route instructions", 9))
            assert "route = frozen decide Route from ticket" in step and "instructions: Pick the team" in step
            reward = await hover_text(s, uri, at(text, "exact_match"))
            assert "`in_mask`" in reward and "1 when the masked output equals" in reward

            found = await s.client.text_document_definition_async(
                lsp.DefinitionParams(s.doc(uri), at(text, "decide Route", 8)))
            assert found.uri == uri and found.range.start == at(text, "model Route", 6)

            refs = await s.client.text_document_references_async(lsp.ReferenceParams(
                text_document=s.doc(uri), position=at(text, "input  ticket", 8),
                context=lsp.ReferenceContext(include_declaration=True)))
            uses = text.count("from ticket")
            assert len(refs) == 1 + uses and refs[0].range.start == at(text, "input  ticket", 7)
            refs = await s.client.text_document_references_async(lsp.ReferenceParams(
                text_document=s.doc(uri), position=at(text, "lm desk", 4),
                context=lsp.ReferenceContext(include_declaration=False)))
            assert list(refs) == []  # one lm: steps use it without naming it

            symbols = await s.client.text_document_document_symbol_async(lsp.DocumentSymbolParams(s.doc(uri)))
            assert [x.name for x in symbols] == ["Ticket", "Route", "Reply", "desk", "support", "tickets",
                                                 "train support on tickets"]
            program = symbols[4]
            assert [c.name for c in program.children] == ["ticket", "route", "answer"]
            assert program.kind == lsp.SymbolKind.Module and symbols[1].children[0].name == "team"

            messy = text.replace("    ", "  ").replace("input  ticket: Ticket", "input ticket :Ticket")
            version = s.replace(uri, messy)
            edits = await s.client.text_document_formatting_async(lsp.DocumentFormattingParams(
                text_document=s.doc(uri), options=lsp.FormattingOptions(tab_size=4, insert_spaces=True)))
            (edit,) = edits
            assert edit.range.start == lsp.Position(0, 0) and edit.new_text == text
            assert await s.diagnostics(uri, version) == []

    run(session)


def test_completion_offers_keywords_and_names_that_fit(tmp_path: Path) -> None:
    path, text = support(tmp_path)

    async def session() -> None:
        async with language_server(tmp_path) as s:
            uri = s.open(path, text)
            await s.diagnostics(uri, 1)
            assert await labels(s, uri, at(text, "decide Route", 7)) == ["Ticket", "Route", "Reply"]
            assert set(await labels(s, uri, at(text, "desk = ", 30))) >= {
                "temperature", "max_tokens", "n_ctx", "weights", "fallback"}
            assert "in_mask" in await labels(s, uri, at(text, "exact_match(", 12))
            assert set(await labels(s, uri, at(text, "route.team", 6))) == {"team", "urgent"}
            # typing a new step, character by character as an editor sends it
            end = at(text, "    output answer")
            s.edit(uri, end, end, "    extra = ")
            typed = lsp.Position(end.line, end.character + len("    extra = "))
            assert set(await labels(s, uri, typed)) == {"frozen", "generate", "chain_of_thought", "decide", "agent",
                                                        "branch"}
            s.edit(uri, typed, typed, "generate Reply from ")
            typed = lsp.Position(typed.line, typed.character + len("generate Reply from "))
            assert set(await labels(s, uri, typed)) == {"ticket", "route", "answer"}
            s.edit(uri, typed, typed, "ticket ")
            typed = lsp.Position(typed.line, typed.character + len("ticket "))
            offered = await labels(s, uri, typed)
            assert {"using", "instructions"} <= set(offered) and "model" not in offered
            s.edit(uri, typed, typed, "using ")
            typed = lsp.Position(typed.line, typed.character + len("using "))
            assert await labels(s, uri, typed) == ["desk"]
            assert await labels(s, uri, at(text, "// A routed", 5)) == []  # in a comment

    run(session)


def test_diagnostics_follow_edits_with_code_range_and_help(tmp_path: Path) -> None:
    path = tmp_path / "typing.icl"
    text = 'model A {\n    x: str "😀😀 wide" y: int\n}\n'

    async def session() -> None:
        async with language_server(tmp_path) as s:
            uri = s.open(path, text)
            (unused,) = await s.diagnostics(uri, 1)
            assert unused.code == "unused-name" and unused.severity == lsp.DiagnosticSeverity.Warning
            # `int` becomes `strr`: the range counts each emoji as two UTF-16 units, as the client does
            line = text.splitlines()[1]
            start = lsp.Position(1, len(line.encode("utf-16-le")) // 2 - 3)
            version = s.edit(uri, start, lsp.Position(1, start.character + 3), "strr")
            errors = [d for d in await s.diagnostics(uri, version) if d.code == "undefined-name"]
            assert [(d.range.start, d.range.end) for d in errors] == [(start, lsp.Position(1, start.character + 4))]
            assert errors[0].severity == lsp.DiagnosticSeverity.Error and "help: did you mean `str`?" in errors[0].message
            # half typed: a syntax error, then fixed again
            version = s.edit(uri, lsp.Position(2, 0), lsp.Position(2, 1), "")
            (syntax,) = await s.diagnostics(uri, version)
            assert syntax.code == "syntax-error" and "expected" in syntax.message
            version = s.edit(uri, lsp.Position(2, 0), lsp.Position(2, 0), "}")
            assert [d.code for d in await s.diagnostics(uri, version)] == ["undefined-name", "unused-name"]  # errors first

    run(session)


def test_imports_tools_and_what_user_code_prints(tmp_path: Path) -> None:
    (tmp_path / "noisy_tools.py").write_text(
        '# what a module may print at import; on the protocol stream it would swallow the next messages\n'
        'print("Content-Length: 99999\\r\\n\\r\\n", end="", flush=True)\n\ndef add(a: int, b: int) -> int:\n    """Add."""\n    return a + b\n',
        encoding="utf-8")
    (tmp_path / "shared.icl").write_text('model Question { q: str "A question" }\n', encoding="utf-8")
    text = ('import "shared.icl"\n'
            'model Answer { a: int "The answer" }\n'
            'lm m = "openai/x"\n'
            'tool add = python("noisy_tools:add")\n'
            'tool gone = python("no_such_module:f")\n'
            'program p {\n    input question: Question\n'
            '    answer = agent Answer from question tools [add, gone]\n    output answer\n}\n')

    async def session() -> None:
        async with language_server(tmp_path) as s:
            uri = s.open(tmp_path / "main.icl", text)
            diagnostics = await s.diagnostics(uri, 1)  # the checker imported noisy_tools, which printed
            assert [d.code for d in diagnostics] == ["unknown-function"]
            assert "no_such_module" in diagnostics[0].message
            found = await s.client.text_document_definition_async(
                lsp.DefinitionParams(s.doc(uri), at(text, "input question: Question", 17)))
            assert found.uri == (tmp_path / "shared.icl").resolve().as_uri()
            assert found.range.start == lsp.Position(0, 6)
            assert "q: str" in await hover_text(s, uri, at(text, ": Question", 3))

    run(session)


def test_the_server_survives_any_text_and_keeps_answering(tmp_path: Path) -> None:
    rng = random.Random(3)
    seeds = [p.read_text(encoding="utf-8") for p in SEEDS]
    texts = [mutate(rng.choice(seeds), rng) for _ in range(150)]
    texts += [bytes(rng.randrange(256) for _ in range(200)).decode("utf-8", errors="replace") for _ in range(30)]
    program = (ROOT / "programs" / "support.icl").read_text(encoding="utf-8")
    texts += [program[:n] for n in range(0, len(program), 11)]  # every stage of typing it
    texts += ["model A { x: " + "list[" * 5000 + "int" + "]" * 5000 + " }", program]
    huge = generate_program(20_000)
    write_data(tmp_path)
    shutil.copytree(ROOT / "programs" / "data", tmp_path / "data")  # support.icl's

    async def session() -> None:
        async with language_server(tmp_path) as s:
            uri = s.open(tmp_path / "fuzz.icl", "")
            await s.diagnostics(uri, 1)
            for text in texts:  # sent as fast as the pipe takes them
                version = s.replace(uri, text)
            assert await s.diagnostics(uri, version) == []
            published = [p.version for p in s.published[uri]]
            # How many versions get checked depends on the machine's speed; what must hold on any
            # machine is that no older text's result is published after a newer one's.
            assert published == sorted(set(published)) and published[-1] == version, "a stale check was published"
            for text in texts[:40]:
                s.replace(uri, text)
                await labels(s, uri, lsp.Position(rng.randrange(5), rng.randrange(40)))
                await hover_text(s, uri, lsp.Position(rng.randrange(5), rng.randrange(40)))

            small = s.open(tmp_path / "small.icl", program)
            await s.diagnostics(small, 1)
            big = s.open(tmp_path / "huge.icl", huge)
            model = await hover_text(s, small, at(program, "decide Route", 8))
            assert "model Route" in model and big not in s.published, "a big check does not hold up other files"
            assert await s.diagnostics(big, 1, timeout=120) == []
            line = huge.count("\n", 0, huge.index("model In400 {"))
            version = s.edit(big, lsp.Position(line, 6), lsp.Position(line, 11), "Input400")
            undefined = [d for d in await s.diagnostics(big, version, timeout=120) if d.code == "undefined-name"]
            assert undefined and all("`In400`" in d.message for d in undefined)
            symbols = await s.client.text_document_document_symbol_async(lsp.DocumentSymbolParams(s.doc(big)))
            assert len(symbols) > 2000

    run(session)
