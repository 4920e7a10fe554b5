"""A real LSP client (pygls's) talking to `python -m icldsl lsp` over the process's pipes,
for the language server's tests and bench/lsp_latency.py."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import AsyncIterator

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient


class Session:
    """One server process and the client talking to it; keeps every diagnostics notification."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.published: dict[str, list[lsp.PublishDiagnosticsParams]] = {}
        self._arrived = asyncio.Condition()
        self.versions: dict[str, int] = {}

    async def on_diagnostics(self, params: lsp.PublishDiagnosticsParams) -> None:
        async with self._arrived:
            self.published.setdefault(params.uri, []).append(params)
            self._arrived.notify_all()

    def open(self, path: Path, text: str) -> str:
        uri = path.resolve().as_uri()
        self.versions[uri] = 1
        self.client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            lsp.TextDocumentItem(uri=uri, language_id="icl", version=1, text=text)))
        return uri

    def replace(self, uri: str, text: str) -> int:
        """Send the whole new text as one change; returns the new version."""
        self.versions[uri] += 1
        self.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            [lsp.TextDocumentContentChangeWholeDocument(text=text)]))
        return self.versions[uri]

    def edit(self, uri: str, start: lsp.Position, end: lsp.Position, text: str) -> int:
        """Send one incremental change, as editors do while typing; returns the new version."""
        self.versions[uri] += 1
        self.client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            lsp.VersionedTextDocumentIdentifier(uri=uri, version=self.versions[uri]),
            [lsp.TextDocumentContentChangePartial(range=lsp.Range(start, end), text=text)]))
        return self.versions[uri]

    async def diagnostics(self, uri: str, version: int, timeout: float = 60) -> list[lsp.Diagnostic]:
        """The diagnostics published for `version` of the document."""
        async def arrived() -> lsp.PublishDiagnosticsParams:
            async with self._arrived:
                await self._arrived.wait_for(lambda: any(p.version == version for p in self.published.get(uri, [])))
                return next(p for p in self.published[uri] if p.version == version)

        return list((await asyncio.wait_for(arrived(), timeout)).diagnostics)

    @staticmethod
    def doc(uri: str) -> lsp.TextDocumentIdentifier:
        return lsp.TextDocumentIdentifier(uri=uri)


@contextlib.asynccontextmanager
async def language_server(cwd: Path) -> AsyncIterator[Session]:
    """Start the server, initialize it, and shut it down (checking it exits cleanly) afterwards."""
    client = LanguageClient("icldsl-tests", "1")
    session = Session(client)

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    async def on_diagnostics(params: lsp.PublishDiagnosticsParams) -> None:
        await session.on_diagnostics(params)

    await client.start_io(sys.executable, "-m", "icldsl", "lsp", cwd=str(cwd))
    try:
        result = await asyncio.wait_for(client.initialize_async(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(), root_uri=cwd.resolve().as_uri())), 60)
        assert result.server_info.name == "icldsl"
        client.initialized(lsp.InitializedParams())
        yield session
        await asyncio.wait_for(client.shutdown_async(None), 30)
        client.exit(None)
        assert await asyncio.wait_for(client._server.wait(), 30) == 0
    finally:
        if client._server.returncode is None:
            client._server.kill()
        await client.stop()
