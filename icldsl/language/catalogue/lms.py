"""LM providers and embedding models, as an `lm` or `embedding` block names them (`provider/model`),
and every option each takes, declared once: the checker, the language server, the artifact
loader and the docs read these, and the clients' constructors take their defaults and refusals
from them (`Signature.resolve`). Each client is named as `"module:Class"`, imported when one is
made (`icldsl.lm.providers`), so that reading this imports neither httpx nor llama.cpp.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

from ..options import CONCURRENCY, HOST_URLS, LM_NAME, URLS, AtLeast, Choice, Option, Signature, Within

# Options any LM accepts that travel in each request, not to the client.
DECODING_OPTIONS: Mapping[str, Option] = {
    "temperature": Option(Within(float, 0, 2), doc="sampling temperature; 0 picks the likeliest token"),
    "max_tokens": Option(AtLeast(int, 1), doc="the most tokens an answer may take"),
    "seed": Option(int, doc="the seed of a sampled answer, where the provider takes one"),
}
DECODING = Signature.declare(DECODING_OPTIONS)

# Options any LM accepts that the runtime acts on.
RUNTIME_OPTIONS: Mapping[str, Option] = {
    "fallback": Option(LM_NAME, doc="the lm block tried when a call to this one fails"),
}

# Options every HTTP provider's client takes, besides its own (base_url, api_key, ...).
HTTP_OPTIONS: Mapping[str, Option] = {
    "timeout": Option(AtLeast(float, 0, strict=True), 120.0, "seconds one attempt may take"),
    "max_retries": Option(AtLeast(int, 0), 3, "retries of a call after 429, 5xx, a timeout or a dropped "
                          "connection, with exponential backoff and jitter"),
    "max_concurrency": Option(CONCURRENCY, 8, "requests to this LM in flight at once"),
    "rpm": Option(AtLeast(int, 1), doc="requests started in any minute"),
    "total_timeout": Option(AtLeast(float, 0, strict=True), doc="seconds a whole call may take, retries included"),
}
_BASE_URL = Option(URLS, doc="the server, or several servers of the same model (each request goes to the "
                   "least busy)")
_API_KEY = Option(str, doc='the API key, as `env("NAME")`')
_KEYED_HTTP = {"base_url": _BASE_URL, "api_key": _API_KEY, **HTTP_OPTIONS}  # a server that takes an API key

# One rule for `max_concurrency`'s default: what the server answers at once by default. An
# Ollama server answers 4 requests at once unless told otherwise (OLLAMA_NUM_PARALLEL); more
# would wait in its queue, counted against `timeout`. The others serve many: 8.
_OLLAMA = {
    "base_url": Option(HOST_URLS, doc="the server (`host:port` is http), or several servers of the same model"),
    "num_ctx": Option(AtLeast(int, 1), doc="Ollama's context window in tokens (its default silently cuts "
                      "long prompts)"),
    **HTTP_OPTIONS,
    "max_concurrency": Option(CONCURRENCY, 4, "requests to this LM in flight at once (an Ollama server "
                              "answers 4 at once by default)"),
}

WEIGHTS_OF_FILE = "file"  # the `weights` of a model run as its file has them
_LOCAL = {
    "n_ctx": Option(Within(int, 64, 131072), 4096, "context window of each request, in tokens"),
    "n_threads": Option(AtLeast(int, 1), doc="threads, fixed; by default the CPUs other processes leave free"),
    "n_parallel": Option(AtLeast(int, 1), 8, "requests decoded together; each holds n_ctx tokens of KV cache"),
    "weights": Option(Choice((WEIGHTS_OF_FILE, "q4_0")), WEIGHTS_OF_FILE,
                      '"file": the file\'s own; "q4_0": requantized once, for llama.cpp\'s batched kernels'),
}


@dataclass(frozen=True, slots=True)
class Provider:
    """An LM provider: its client class as `"module:Class"`, one line of doc, the options its
    constructor takes (`client_options`) and every option an `lm` block of it takes (`signature`:
    the decoding and runtime options too). `scores`: its client answers requests with choices
    by their log-probabilities (`LMRequest.choices`), which `nearest_few_shot(vote_weight: ...)` sends."""

    client: str
    doc: str
    client_options: Signature
    signature: Signature
    scores: bool = False

    @classmethod
    def declare(cls, client: str, doc: str, options: Mapping[str, Option], *, scores: bool = False) -> "Provider":
        return cls(client, doc, Signature.declare(options),
                   Signature.declare({**DECODING_OPTIONS, **RUNTIME_OPTIONS, **options}), scores)


PROVIDERS: Mapping[str, Provider] = MappingProxyType({
    "openai": Provider.declare("icldsl.lm.openai:OpenAIClient", "any OpenAI-compatible chat-completions server",
                               _KEYED_HTTP),
    "vllm": Provider.declare("icldsl.lm.openai:VLLMClient", "a vLLM server (OpenAI-compatible), by default on "
                             "127.0.0.1:8000", _KEYED_HTTP),
    "ollama": Provider.declare("icldsl.lm.ollama:OllamaClient", "an Ollama server's native chat API", _OLLAMA),
    "anthropic": Provider.declare("icldsl.lm.anthropic:AnthropicClient", "Anthropic's messages API", _KEYED_HTTP),
    "local": Provider.declare("icldsl.lm.local:LocalClient", "a GGUF model run in process by llama.cpp", _LOCAL,
                              scores=True),
})


@dataclass(frozen=True, slots=True)
class Embedding:
    """An embedding provider: its class as `"module:Class"` and the options an `embedding` block
    of it takes (`signature`, as every entry of the catalogue has: an HTTP provider's are its
    connection options; `local`, in process, takes none)."""

    embedder: str
    signature: Signature


EMBEDDERS: Mapping[str, Embedding] = MappingProxyType({
    "openai": Embedding("icldsl.lm.openai:OpenAIEmbedder", PROVIDERS["openai"].client_options),
    "vllm": Embedding("icldsl.lm.openai:VLLMEmbedder", PROVIDERS["vllm"].client_options),
    "ollama": Embedding("icldsl.lm.ollama:OllamaEmbedder", PROVIDERS["ollama"].client_options),
    "local": Embedding("icldsl.lm.minilm:LocalEmbedder", Signature.declare({})),
})


def split_target(target: str) -> tuple[str, str]:
    """`"openai/gpt-4.1-mini"` -> `("openai", "gpt-4.1-mini")`; no slash gives an empty provider.

    `"local:/path/model.gguf"` -> `("local", "/path/model.gguf")`: a model file named by its path.
    """
    if target.startswith("local:"):
        return "local", target.removeprefix("local:")
    provider, _, model = target.partition("/")
    return (provider, model) if model else ("", target)
