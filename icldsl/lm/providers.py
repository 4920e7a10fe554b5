"""Clients made from the catalogue: `make_client` and `make_embedder` build the class a provider
names (`icldsl.language.catalogue.lms`), and `declared_options` gives a constructor its options
as declared there: defaults filled, and a value the checker refuses refused in its words.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..language.catalogue.lms import DECODING, DECODING_OPTIONS, EMBEDDERS, PROVIDERS, RUNTIME_OPTIONS, split_target
from ..language.options import Signature, implementation
from .base import Embedder, LMClient, LMConfigError

__all__ = ["declared_options", "make_client", "make_embedder", "split_target"]


def declared_options(name: str, signature: Signature, given: Mapping[str, Any]) -> dict[str, Any]:
    """`given` (None: not given) over `signature`'s defaults; LMConfigError, prefixed with `name`
    (`openai`, `local`), for a value `icldsl check` refuses in a file."""
    try:
        return signature.resolve(given)
    except ValueError as exc:
        empty = [option for option, value in given.items() if value == []]  # env(...) variables unset
        hint = f" ({', '.join(empty)}: are its env(...) variables set?)" if empty else ""
        raise LMConfigError(f"{name}: {exc}{hint}") from None


def _client_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` without those that travel in requests or that the runtime acts on."""
    return {k: v for k, v in options.items() if k not in DECODING_OPTIONS and k not in RUNTIME_OPTIONS}


def make_client(target: str, options: Mapping[str, Any], *, concurrency: int | None = None) -> LMClient:
    """A client for `target`, given its options (already resolved); its decoding options, which
    travel in each request, are refused here as the checker refuses them (LMConfigError).

    `concurrency` is how many calls the caller keeps in flight (`Program.map`): an HTTP
    LM whose options do not set `max_concurrency` then allows that many.
    """
    provider, model = split_target(target)
    if provider not in PROVIDERS:
        raise LMConfigError(f"unknown LM provider in {target!r}; known: {', '.join(PROVIDERS)}")
    spec = PROVIDERS[provider]
    declared_options(provider, DECODING, {k: v for k, v in options.items() if k in DECODING_OPTIONS})
    client_options = _client_options(options)
    if concurrency is not None and "max_concurrency" in spec.client_options.options \
            and "max_concurrency" not in client_options:
        client_options["max_concurrency"] = concurrency
    return implementation(spec.client)(model, **client_options)


def make_embedder(target: str, options: Mapping[str, Any] | None = None) -> Embedder:
    """An embedding model for `target` (`openai/text-embedding-3-small`, `ollama/all-minilm`,
    `local/all-minilm-l6-v2`), given its options (already resolved)."""
    provider, model = split_target(target)
    if provider not in EMBEDDERS:
        raise LMConfigError(f"no embedding models for {target!r}; providers with embeddings: {', '.join(EMBEDDERS)}")
    return implementation(EMBEDDERS[provider].embedder)(model, **_client_options(options or {}))
