"""LM clients behind one protocol, addressed as `provider/model`.

`providers` says which client serves an address; `connect` builds the client behind an
`lm` block (options, `env(...)`, fallback, cache, metering, tracing) for programs,
rewards and optimizers alike.

The names below load with their module when first used: the checker reads `providers`
without importing a client (and httpx with it).
"""

from __future__ import annotations

from ..lazy import exports

_EXPORTS = {
    "Embedder": "base", "LMClient": "base", "LMConfigError": "base", "LMError": "base", "LMRequest": "base",
    "LMResponse": "base", "Message": "base", "Usage": "base",
    "Connection": "connect", "Clients": "connect", "Meter": "connect", "connect_embedder": "connect",
    "decoding_options": "connect", "resolve_options": "connect",
    "DECODING_OPTIONS": "providers", "EMBEDDERS": "providers", "PROVIDERS": "providers",
    "RUNTIME_OPTIONS": "providers", "Provider": "providers", "embedding_options": "providers",
    "make_client": "providers", "make_embedder": "providers", "split_target": "providers",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
