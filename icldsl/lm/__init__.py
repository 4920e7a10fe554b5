"""LM clients behind one protocol, addressed as `provider/model`.

`providers` says which client serves an address; `connect` builds the client behind an
`lm` block (options, `env(...)`, fallback, cache, metering, tracing) for programs,
rewards and optimizers alike.

The providers and their options are declared in `icldsl.language.catalogue.lms`; the names
below load with their module when first used.
"""

from __future__ import annotations

from ..lazy import exports

_EXPORTS = {
    "Embedder": "base", "LMClient": "base", "LMConfigError": "base", "LMError": "base", "LMRequest": "base",
    "LMResponse": "base", "Message": "base", "Usage": "base",
    "Connection": "connect", "Clients": "connect", "Meter": "connect", "connect_embedder": "connect",
    "decoding_options": "connect", "resolve_options": "connect",
    "declared_options": "providers", "make_client": "providers", "make_embedder": "providers",
    "split_target": "providers",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
