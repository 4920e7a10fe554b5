"""LM clients behind one protocol, addressed as `provider/model`.

`providers` says which client serves an address; `connect` builds the client behind an
`lm` block (options, `env(...)`, fallback, cache, metering, tracing) for programs,
rewards and optimizers alike.
"""

from __future__ import annotations

from .base import Embedder, LMClient, LMConfigError, LMError, LMRequest, LMResponse, Message, Usage
from .connect import Connection, Clients, Meter, connect_embedder, decoding_options, resolve_options
from .providers import (DECODING_OPTIONS, EMBEDDERS, PROVIDERS, RUNTIME_OPTIONS, Provider, embedding_options,
                        make_client, make_embedder, split_target)

__all__ = [
    "DECODING_OPTIONS", "EMBEDDERS", "PROVIDERS", "Provider", "RUNTIME_OPTIONS", "Connection", "Clients",
    "Embedder", "LMClient", "LMConfigError", "LMError", "LMRequest", "LMResponse", "Message", "Meter", "Usage",
    "connect_embedder", "decoding_options", "embedding_options", "make_client", "make_embedder", "resolve_options",
    "split_target",
]
