"""LM clients behind one protocol, addressed as `provider/model`."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Mapping

from .base import LMClient, LMConfigError, LMError, LMRequest, LMResponse, Message, Usage

# Decoding options any LM accepts; they travel in each request, not to the client.
DECODING_OPTIONS: Mapping[str, type] = {"temperature": float, "max_tokens": int, "seed": int}


@dataclass(frozen=True, slots=True)
class Provider:
    module: str  # the module holding the client class and its OPTIONS
    client: str
    doc: str

    @property
    def options(self) -> Mapping[str, type]:
        return {**DECODING_OPTIONS, **importlib.import_module(self.module).OPTIONS}


PROVIDERS: Mapping[str, Provider] = {
    "openai": Provider("icldsl.lm.openai", "OpenAIClient", "any OpenAI-compatible chat-completions server"),
    "local": Provider("icldsl.lm.local", "LocalClient", "a GGUF model run in process by llama.cpp"),
}


def split_target(target: str) -> tuple[str, str]:
    """`"openai/gpt-4.1-mini"` -> `("openai", "gpt-4.1-mini")`; no slash gives an empty provider."""
    provider, _, model = target.partition("/")
    return (provider, model) if model else ("", target)


def make_client(target: str, options: Mapping[str, Any]) -> LMClient:
    """A client for `target`, given its non-decoding options (already resolved)."""
    provider, model = split_target(target)
    if provider not in PROVIDERS:
        raise LMConfigError(f"unknown LM provider in {target!r}; known: {', '.join(PROVIDERS)}")
    spec = PROVIDERS[provider]
    client_class = getattr(importlib.import_module(spec.module), spec.client)
    client_options = {k: v for k, v in options.items() if k not in DECODING_OPTIONS}
    return client_class(model, **client_options)


__all__ = [
    "DECODING_OPTIONS", "PROVIDERS", "Provider", "LMClient", "LMConfigError", "LMError",
    "LMRequest", "LMResponse", "Message", "Usage", "make_client", "split_target",
]
