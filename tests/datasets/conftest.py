"""Fixtures for the dataset loaders: the shared GSM8K copy, a clean environment, a file server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

# The repo and the shared directory sit side by side (/work/main, /work/shared; the same in CI).
SHARED_GSM8K = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets" / "gsm8k"


@pytest.fixture
def gsm8k_dir() -> Path:
    """The real local copy of GSM8K."""
    assert (SHARED_GSM8K / "train.jsonl").is_file(), f"GSM8K copy missing at {SHARED_GSM8K}"
    return SHARED_GSM8K


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No GSM8K path from the caller's environment, a private cache, no proxies; returns the cache root."""
    monkeypatch.delenv("ICLDSL_GSM8K_PATH", raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv("ICLDSL_CACHE_DIR", str(cache))
    return cache


@dataclass
class FileServer:
    """A static file server on 127.0.0.1 serving `root`, recording each requested path."""

    root: Path
    url: str = ""
    requests: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        root, requests = self.root, self.requests

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
            self._server = None


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    root = tmp_path / "served"
    root.mkdir()
    server = FileServer(root)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
