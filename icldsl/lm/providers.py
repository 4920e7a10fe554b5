"""The providers: which client class serves `provider/model`, and the options each takes.

The options are listed here, not beside the clients, so that the checker reads them
without importing a client (httpx, llama.cpp); a client's constructor takes them by keyword.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Mapping

from ..language.options import CONCURRENCY, LM_NAME, URLS, Choice
from .base import Embedder, LMClient, LMConfigError
from .local.models import FILE_WEIGHTS, WEIGHTS

# Decoding options any LM accepts; they travel in each request, not to the client.
DECODING_OPTIONS: Mapping[str, type] = {"temperature": float, "max_tokens": int, "seed": int}
# Options any LM accepts that the runtime acts on: `fallback` names the lm block tried
# when a call to this one fails.
RUNTIME_OPTIONS: Mapping[str, Any] = {"fallback": LM_NAME}
# Options every HTTP provider accepts, besides its own (base_url, api_key, ...).
HTTP_OPTIONS: Mapping[str, Any] = {"timeout": float, "max_retries": int, "max_concurrency": CONCURRENCY, "rpm": int,
                                   "total_timeout": float}


@dataclass(frozen=True, slots=True)
class Provider:
    module: str  # the module holding the client class
    client: str
    doc: str
    client_options: Mapping[str, Any]  # what the client's constructor takes

    @property
    def options(self) -> Mapping[str, Any]:
        return {**DECODING_OPTIONS, **RUNTIME_OPTIONS, **self.client_options}


_KEYED_HTTP = {"base_url": URLS, "api_key": str, **HTTP_OPTIONS}  # a server that takes an API key


PROVIDERS: Mapping[str, Provider] = {
    "openai": Provider("icldsl.lm.openai", "OpenAIClient", "any OpenAI-compatible chat-completions server",
                       _KEYED_HTTP),
    "vllm": Provider("icldsl.lm.openai", "VLLMClient", "a vLLM server (OpenAI-compatible), by default on "
                     "127.0.0.1:8000", _KEYED_HTTP),
    "ollama": Provider("icldsl.lm.ollama", "OllamaClient", "an Ollama server's native chat API",
                       {"base_url": URLS, "num_ctx": int, **HTTP_OPTIONS}),
    "anthropic": Provider("icldsl.lm.anthropic", "AnthropicClient", "Anthropic's messages API", _KEYED_HTTP),
    "local": Provider("icldsl.lm.local", "LocalClient", "a GGUF model run in process by llama.cpp",
                      {"n_ctx": int, "n_threads": int, "n_parallel": int, "weights": Choice((FILE_WEIGHTS, *WEIGHTS))}),
}


def split_target(target: str) -> tuple[str, str]:
    """`"openai/gpt-4.1-mini"` -> `("openai", "gpt-4.1-mini")`; no slash gives an empty provider.

    `"local:/path/model.gguf"` -> `("local", "/path/model.gguf")`: a model file named by its path.
    """
    if target.startswith("local:"):
        return "local", target.removeprefix("local:")
    provider, _, model = target.partition("/")
    return (provider, model) if model else ("", target)


def make_client(target: str, options: Mapping[str, Any], *, concurrency: int | None = None) -> LMClient:
    """A client for `target`, given its non-decoding options (already resolved).

    `concurrency` is how many calls the caller keeps in flight (`Program.map`): an HTTP
    LM whose options do not set `max_concurrency` then allows that many.
    """
    provider, model = split_target(target)
    if provider not in PROVIDERS:
        raise LMConfigError(f"unknown LM provider in {target!r}; known: {', '.join(PROVIDERS)}")
    spec = PROVIDERS[provider]
    client_class = getattr(importlib.import_module(spec.module), spec.client)
    client_options = {k: v for k, v in options.items() if k not in DECODING_OPTIONS and k not in RUNTIME_OPTIONS}
    if concurrency is not None and "max_concurrency" in spec.options and "max_concurrency" not in client_options:
        client_options["max_concurrency"] = concurrency
    return client_class(model, **client_options)


# Embedding models by provider: (module, class). Their options are the provider's
# connection options (base_url, api_key, timeout, ...); `local` (in process) takes none.
EMBEDDERS: Mapping[str, tuple[str, str]] = {
    "openai": ("icldsl.lm.openai", "OpenAIEmbedder"),
    "vllm": ("icldsl.lm.openai", "VLLMEmbedder"),
    "ollama": ("icldsl.lm.ollama", "OllamaEmbedder"),
    "local": ("icldsl.lm.minilm", "LocalEmbedder"),
}


def embedding_options(provider: str) -> Mapping[str, type]:
    """The options an `embedding` block of this provider (one of EMBEDDERS) takes."""
    return {} if provider == "local" else PROVIDERS[provider].client_options


def make_embedder(target: str, options: Mapping[str, Any] | None = None) -> Embedder:
    """An embedding model for `target` (`openai/text-embedding-3-small`, `ollama/all-minilm`,
    `local/all-minilm-l6-v2`), given its options (already resolved)."""
    provider, model = split_target(target)
    if provider not in EMBEDDERS:
        raise LMConfigError(f"no embedding models for {target!r}; providers with embeddings: {', '.join(EMBEDDERS)}")
    module, name = EMBEDDERS[provider]
    options = {k: v for k, v in (options or {}).items() if k not in DECODING_OPTIONS and k not in RUNTIME_OPTIONS}
    return getattr(importlib.import_module(module), name)(model, **options)
