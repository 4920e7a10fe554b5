"""`icldsl lsp`: the language server, over standard input and output (pygls).

Each open document has a task that checks its latest text in a worker thread, one check at
a time: a change that arrives while a check runs waits for it, and the stale result is not
published, so bursts of typing cost one check each way. Documents are checked side by side
(CHECK_THREADS), so a huge document being checked does not hold up the others, and the server
leaves on `exit` without waiting for a check to end. Requests that read positions wait
for the check of the current text; completion uses the last index (it needs only names).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from lsprotocol import types as lsp
from pygls import uris
from pygls.lsp.server import LanguageServer

from .. import __version__
from ..language import ir
from ..language.diagnostics import CheckError, Diagnostic
from ..language.formatter import format_source
from ..language.source import Source, Span
from .analysis import Analysis, analyze
from .completion import complete
from .incremental import IncrementalParser
from .preview import render_preview
from .rename import Refused, rename, renamable
from .symbols import hover

logger = logging.getLogger(__name__)

SEVERITY = {"error": lsp.DiagnosticSeverity.Error, "warning": lsp.DiagnosticSeverity.Warning}
SYMBOL_KINDS = {"model": lsp.SymbolKind.Class, "field": lsp.SymbolKind.Field, "lm": lsp.SymbolKind.Object,
                "embedding": lsp.SymbolKind.Object, "tool": lsp.SymbolKind.Function,
                "program": lsp.SymbolKind.Module, "input": lsp.SymbolKind.Variable, "step": lsp.SymbolKind.Method,
                "data": lsp.SymbolKind.Constant, "train": lsp.SymbolKind.Event}
COMPLETION_KINDS = {"keyword": lsp.CompletionItemKind.Keyword, "model": lsp.CompletionItemKind.Class,
                    "type": lsp.CompletionItemKind.Class, "field": lsp.CompletionItemKind.Field,
                    "lm": lsp.CompletionItemKind.Reference, "embedding": lsp.CompletionItemKind.Reference,
                    "tool": lsp.CompletionItemKind.Function, "program": lsp.CompletionItemKind.Module,
                    "input": lsp.CompletionItemKind.Variable, "step": lsp.CompletionItemKind.Variable,
                    "data": lsp.CompletionItemKind.Constant, "reward": lsp.CompletionItemKind.Function,
                    "optimizer": lsp.CompletionItemKind.Function, "loader": lsp.CompletionItemKind.Function,
                    "option": lsp.CompletionItemKind.Property, "value": lsp.CompletionItemKind.Value,
                    "monitor": lsp.CompletionItemKind.EnumMember, "mode": lsp.CompletionItemKind.EnumMember}
RENDER_COMMAND = "icldsl.render"  # arguments: the document's uri, then {"program", "input", "artifact"}, all optional
REQUEST_WAIT = 10.0  # seconds a request waits for the check of the current text before using the last one
CHECK_THREADS = 4  # documents checked at once; each document's checks still run one at a time


@dataclass(eq=False)
class Document:
    """An open document: its parser (with the last version's pieces), its last analysis, the
    version that analysis is of, and the last analysis of a text that parsed whole (whose
    names completion offers while an item is half typed)."""

    name: str
    parser: IncrementalParser = field(default_factory=IncrementalParser)
    analysis: Analysis | None = None
    names: Analysis | None = None
    checked: int | None = None
    dirty: asyncio.Event = field(default_factory=asyncio.Event)
    settled: asyncio.Condition = field(default_factory=asyncio.Condition)
    task: asyncio.Task | None = None


class IclLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("icldsl", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.documents: dict[str, Document] = {}
        self.checks = ThreadPoolExecutor(CHECK_THREADS, thread_name_prefix="icldsl-check")

    # ---- the check of each document
    def changed(self, uri: str) -> None:
        doc = self.documents.get(uri)
        if doc is None:
            doc = self.documents[uri] = Document(_name(uri))
            doc.task = asyncio.get_running_loop().create_task(self._check_loop(uri, doc))
        doc.dirty.set()

    def closed(self, uri: str) -> None:
        doc = self.documents.pop(uri, None)
        if doc is not None and doc.task is not None:
            doc.task.cancel()
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    async def _check_loop(self, uri: str, doc: Document) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await doc.dirty.wait()
            doc.dirty.clear()
            text_document = self.workspace.get_text_document(uri)
            source, version = Source(doc.name, text_document.source), text_document.version
            try:
                analysis = await loop.run_in_executor(self.checks, analyze, source, doc.parser, version)
            except Exception:  # noqa: BLE001 - the server outlives a bug in one check: log it, keep serving
                logger.exception("checking %s failed; the server goes on", uri)
                analysis = None
            async with doc.settled:
                if analysis is not None:
                    doc.analysis = analysis
                    doc.names = analysis if analysis.parsed or doc.names is None else doc.names
                doc.checked = version
                doc.settled.notify_all()
            if analysis is not None and not doc.dirty.is_set():  # a newer text is checked next instead
                self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
                    uri=uri, version=version, diagnostics=[self._diagnostic(d, analysis) for d in analysis.diagnostics]))

    async def current(self, uri: str) -> Analysis | None:
        """The analysis of the document's current text (or the last one, if its check takes too long)."""
        doc = self.documents.get(uri)
        if doc is None:
            return None
        version = self.workspace.get_text_document(uri).version
        async with doc.settled:
            try:
                await asyncio.wait_for(doc.settled.wait_for(lambda: doc.checked == version and not doc.dirty.is_set()),
                                       REQUEST_WAIT)
            except TimeoutError:
                logger.warning("the check of %s takes over %s s; answering from the last one", uri, REQUEST_WAIT)
        return doc.analysis

    # ---- positions: our spans count characters; the client counts in its encoding's units
    def position(self, source: Source, offset: int) -> lsp.Position:
        line, column = source.position(offset)
        text = source.line_text(line)
        return lsp.Position(line - 1, self.workspace.position_codec.client_num_units(text[:column - 1]))

    def range(self, source: Source, span: Span) -> lsp.Range:
        return lsp.Range(self.position(source, span.start), self.position(source, max(span.start, span.end)))

    def offset(self, source: Source, position: lsp.Position) -> int:
        line = position.line + 1
        if line > source.text.count("\n") + 1:
            return len(source.text)
        text, units, column = source.line_text(line), 0, 0
        codec = self.workspace.position_codec
        while column < len(text) and units < position.character:
            units += codec.client_num_units(text[column])
            column += 1
        return source.offset(line, column + 1)

    def location(self, uri: str, analysis: Analysis, span: Span) -> lsp.Location | None:
        """Where a span is: in the document `uri` (analysed as `analysis`) or a file it imports."""
        source = analysis.sources.get(span.file)
        if source is None:
            return None
        where = uri if span.file == analysis.source.name else uris.from_fs_path(span.file) or span.file
        return lsp.Location(uri=where, range=self.range(source, span))

    def _diagnostic(self, d: Diagnostic, analysis: Analysis) -> lsp.Diagnostic:
        source = analysis.sources.get(d.span.file) if d.span else None
        if source is None or d.span.file != analysis.source.name:  # in an imported file: shown at the top
            where = lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
            prefix = f"{d.span.file}:{d.span.line}:{d.span.column}: " if d.span else ""
        else:
            where, prefix = self.range(source, d.span), ""
        message = prefix + d.message + (f" ({d.label})" if d.label else "") + (f"\nhelp: {d.help}" if d.help else "")
        return lsp.Diagnostic(range=where, message=message, severity=SEVERITY[d.severity], code=d.code,
                              source="icldsl")


def _name(uri: str) -> str:
    """The file name a document is checked under: its path (imports and tools are found beside it)."""
    return uris.to_fs_path(uri) or uri


def make_server() -> IclLanguageServer:
    server = IclLanguageServer()

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: IclLanguageServer, params: lsp.DidOpenTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: IclLanguageServer, params: lsp.DidChangeTextDocumentParams) -> None:
        ls.changed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: IclLanguageServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.closed(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    async def on_hover(ls: IclLanguageServer, params: lsp.HoverParams) -> lsp.Hover | None:
        analysis = await ls.current(params.text_document.uri)
        if analysis is None:
            return None
        found = analysis.index.at(ls.offset(analysis.source, params.position))
        if found is None:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=hover(found.symbol, analysis.index)),
                         range=ls.range(analysis.source, found.span))

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    async def on_definition(ls: IclLanguageServer, params: lsp.DefinitionParams) -> lsp.Location | None:
        analysis = await ls.current(params.text_document.uri)
        found = analysis.index.at(ls.offset(analysis.source, params.position)) if analysis else None
        if found is None or found.symbol.span is None:
            return None
        return ls.location(params.text_document.uri, analysis, found.symbol.span)

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    async def on_references(ls: IclLanguageServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        analysis = await ls.current(params.text_document.uri)
        found = analysis.index.at(ls.offset(analysis.source, params.position)) if analysis else None
        if found is None or found.symbol.span is None:
            return []
        occurrences = [o for o in analysis.index.references(found.symbol)
                       if params.context.include_declaration or not o.definition]
        spans = [o.span for o in occurrences]
        if params.context.include_declaration and found.symbol.span.file != analysis.source.name:
            spans.insert(0, found.symbol.span)  # defined in an imported file
        return [loc for span in spans if (loc := ls.location(params.text_document.uri, analysis, span)) is not None]

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[".", "(", "{", "[", ":", ",", " "]))
    async def on_completion(ls: IclLanguageServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        doc = ls.documents.get(uri)
        analysis = doc.names if doc and doc.names else await ls.current(uri)
        if analysis is None:
            return lsp.CompletionList(is_incomplete=False, items=[])
        text = ls.workspace.get_text_document(uri).source
        source = Source(analysis.source.name, text)
        found = complete(text, ls.offset(source, params.position), analysis.index)
        return lsp.CompletionList(is_incomplete=False, items=[
            lsp.CompletionItem(label=c.label, kind=COMPLETION_KINDS.get(c.kind), detail=c.detail or None,
                               insert_text=c.insert) for c in found])

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    async def on_symbols(ls: IclLanguageServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        analysis = await ls.current(params.text_document.uri)
        if analysis is None:
            return []
        return document_symbols(ls, analysis)

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    async def on_formatting(ls: IclLanguageServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit]:
        uri = params.text_document.uri
        source = Source(_name(uri), ls.workspace.get_text_document(uri).source)
        try:
            formatted = await asyncio.get_running_loop().run_in_executor(ls.checks, format_source, source)
        except CheckError:  # a syntax error: its diagnostic is already shown; nothing to format
            return []
        if formatted == source.text:
            return []
        end = ls.position(source, len(source.text))
        return [lsp.TextEdit(range=lsp.Range(lsp.Position(0, 0), end), new_text=formatted)]

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
    async def on_code_action(ls: IclLanguageServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        """The fix of each diagnostic (of the current text) that touches the range asked about."""
        uri = params.text_document.uri
        analysis = await ls.current(uri)
        if analysis is None:
            return []
        source, actions = analysis.source, []
        start, end = ls.offset(source, params.range.start), ls.offset(source, params.range.end)
        for d in analysis.diagnostics:
            place = d.fix.locate(source.text) if d.fix and d.fix.span.file == source.name else None
            if place is None or d.span.start > end or max(d.span.end, d.span.start) < start:
                continue
            edit = lsp.TextEdit(range=lsp.Range(ls.position(source, place[0]), ls.position(source, place[1])),
                                new_text=d.fix.new)
            actions.append(lsp.CodeAction(title=d.fix.title, kind=lsp.CodeActionKind.QuickFix,
                                          diagnostics=[ls._diagnostic(d, analysis)], is_preferred=True,
                                          edit=lsp.WorkspaceEdit(changes={uri: [edit]})))
        return actions

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    async def on_prepare_rename(ls: IclLanguageServer, params: lsp.PrepareRenameParams) -> lsp.Range | None:
        analysis = await ls.current(params.text_document.uri)
        if analysis is None:
            return None
        try:
            found = renamable(analysis.index.at(ls.offset(analysis.source, params.position)), analysis.source)
        except Refused as exc:
            raise ValueError(str(exc)) from None  # pygls answers with an error the editor shows
        return ls.range(analysis.source, found.span)

    @server.feature(lsp.TEXT_DOCUMENT_RENAME, lsp.RenameOptions(prepare_provider=True))
    async def on_rename(ls: IclLanguageServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
        uri = params.text_document.uri
        analysis = await ls.current(uri)
        if analysis is None:
            return None
        try:
            spans = rename(analysis.index, analysis.index.at(ls.offset(analysis.source, params.position)),
                           params.new_name)
        except Refused as exc:
            raise ValueError(str(exc)) from None
        return lsp.WorkspaceEdit(changes={uri: [lsp.TextEdit(range=ls.range(analysis.source, s),
                                                             new_text=params.new_name) for s in spans]})

    @server.command(RENDER_COMMAND)
    async def on_render(ls: IclLanguageServer, *args: object) -> dict:
        """The messages `icldsl render` shows for a program of the document, for an input."""
        uri = args[0] if args and isinstance(args[0], str) else None
        asked = args[1] if len(args) > 1 and isinstance(args[1], dict) else {}
        if uri is None:
            return {"error": f"{RENDER_COMMAND} takes the document's uri, then {{program, input, artifact}}"}
        source = Source(_name(uri), ls.workspace.get_text_document(uri).source)
        inputs = asked.get("input")
        if inputs is not None and not isinstance(inputs, dict):
            return {"error": "the input must be a JSON object of the program's input fields"}
        return await asyncio.get_running_loop().run_in_executor(
            ls.checks, render_preview, source, asked.get("program"), inputs, asked.get("artifact"))

    return server


def document_symbols(ls: IclLanguageServer, analysis: Analysis) -> list[lsp.DocumentSymbol]:
    """The file's own definitions, models with their fields and programs with their inputs and steps."""
    source = analysis.source

    def symbol(kind: str, name: str, span: Span, detail: str = "", children=None) -> lsp.DocumentSymbol:
        where = ls.range(source, span)
        return lsp.DocumentSymbol(name=name, kind=SYMBOL_KINDS[kind], range=where, selection_range=where,
                                  detail=detail or None, children=children)

    found = []
    for item in analysis.module.items:
        if item.span.file != source.name:
            continue
        if isinstance(item, ir.Model):
            found.append(symbol("model", item.name, item.span, "model",
                                [symbol("field", f.name, f.span) for f in item.fields]))
        elif isinstance(item, ir.Program):
            steps = [symbol("input", i.name, i.span, i.model.name) for i in item.inputs]
            steps += [symbol("step", s.name, s.span, "branch" if isinstance(s, ir.Branch) else s.kind)
                      for s in item.steps]
            found.append(symbol("program", item.name, item.span, "program", steps))
        elif isinstance(item, ir.Train):
            found.append(symbol("train", f"train {item.program.name} on {item.data.name}", item.span))
        elif not isinstance(item, ir.Import):
            kind = type(item).__name__.lower()  # lm, embedding, tool, data
            found.append(symbol(kind, item.name, item.span, kind))
    return found


def serve() -> None:
    """Serve over stdin and stdout until the client says exit.

    The protocol gets its own copy of standard output, and file descriptor 1 then points at
    standard error: whatever else writes to standard output (a user's tool module printing
    as the checker imports it, a C library) goes to the client's log instead of corrupting
    the messages.
    """
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    server = make_server()
    shut_down = []

    @server.feature(lsp.SHUTDOWN)
    def on_shutdown(_ls: IclLanguageServer, _params: None) -> None:
        shut_down.append(True)

    server.start_io(sys.stdin.buffer, protocol_out)
    # Leave now: the interpreter's exit would wait for a check still running in a worker thread
    # (minutes for a huge document), and a check's result is of no use any more. The code is
    # the protocol's: 0 after a `shutdown` request, else 1.
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0 if shut_down else 1)
