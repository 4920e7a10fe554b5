"""Rules for `lm` and `embedding` blocks: provider and model, options, fallbacks, and
secrets that must come from the environment."""

from __future__ import annotations

from typing import Mapping

from .. import ir
from ..diagnostics import Sink, did_you_mean
from ...lm import EMBEDDERS, PROVIDERS, embedding_options, split_target
from ..options import LM_NAME, Signature, matches, url_secrets
from .common import check_args, first


SECRET_OPTIONS = ("api_key",)  # options that may only come from the environment


def _check_fallback(lm: ir.LM, ref: ir.Ref, lms: Mapping[str, ir.LM], sink: Sink) -> None:
    """`fallback` names another lm, and following fallbacks never comes back to `lm`."""
    if ref.name not in lms:
        sink.add("undefined-name", f"unknown lm `{ref.name}`", ref.span, "no lm of this name",
                 did_you_mean(ref.name, lms) or f"define `lm {ref.name} = \"provider/model\"`")
        return
    chain, name = [lm.name], ref.name
    while name in lms and name not in chain:
        chain.append(name)
        name = next((str(a.value) for a in lms[name].options
                     if a.name == "fallback" and matches(a.value, LM_NAME)), "")
    if name == lm.name:
        sink.add("invalid-value", f"lm `{lm.name}` falls back to itself: {' -> '.join([*chain, name])}",
                 ref.span, "fallback cycle", "a fallback must end at an lm without one")


def _url_credentials(value: ir.Value, owner: str, option: str, sink: Sink) -> bool:
    """A URL with a user name, password or token in it (`http://user:key@host`,
    `http://host/v1?api_key=...`) holds a secret too, alone or in a list of URLs."""
    items = value.items if isinstance(value, ir.ListValue) else (value,)
    found = [item for item in items if isinstance(item, ir.Literal) and isinstance(item.value, str)
             and url_secrets(item.value)]
    instead = '[env("NAME"), ...]' if isinstance(value, ir.ListValue) else 'env("NAME")'
    for item in found:
        sink.add("secret-in-source", f"`{option}` of {owner} holds credentials in its URL", item.span,
                 "a secret in the source", f"put the URL, credentials and all, in a variable: `{option}: {instead}`")
    return bool(found)


def check_lms(module: ir.Module, sink: Sink) -> None:
    lms = first(module.of(ir.LM))
    for lm in module.of(ir.LM):
        provider, model = split_target(lm.target.value)
        if provider not in PROVIDERS:
            sink.add("unknown-provider", f"unknown LM provider `{provider or lm.target.value}`", lm.target.span,
                     "not a known provider", did_you_mean(provider, PROVIDERS)
                     or "write `provider/model`, with provider one of: " + ", ".join(PROVIDERS))
            continue
        if lm.target.value.startswith("local:") and not model.endswith(".gguf"):
            sink.add("invalid-value", f"`{lm.target.value}` does not name a model file", lm.target.span,
                     "not a .gguf path", 'write the path of a GGUF file: `"local:/path/to/model.gguf"`')
        options = PROVIDERS[provider].options
        check_args(lm.options, Signature(options), f"lm `{lm.name}` ({provider})", sink)
        for arg in lm.options:
            value = arg.value
            if arg.name == "fallback" and matches(value, LM_NAME):
                _check_fallback(lm, value, lms, sink)
            if _url_credentials(value, f"lm `{lm.name}`", arg.name, sink):
                continue
            if not isinstance(value, ir.Literal) or not matches(value, options.get(arg.name, object)):
                continue
            if arg.name in SECRET_OPTIONS:
                sink.add("secret-in-source", f"`{arg.name}` of lm `{lm.name}` is written in the file", value.span,
                         "a key in the source", f'read it from the environment: `{arg.name}: env("NAME")`')
                continue
            if arg.name == "temperature" and not 0 <= value.value <= 2:
                sink.add("invalid-value", "temperature must be between 0 and 2", value.span)
            elif arg.name == "max_retries" and value.value < 0:
                sink.add("invalid-value", "`max_retries` cannot be negative", value.span)
            elif arg.name not in ("temperature", "seed", "max_retries") and isinstance(value.value, (int, float)) \
                    and value.value <= 0:
                sink.add("invalid-value", f"`{arg.name}` must be greater than 0", value.span)


def check_embeddings(module: ir.Module, sink: Sink) -> None:
    for emb in module.of(ir.Embedding):
        provider, _ = split_target(emb.target.value)
        if provider not in EMBEDDERS:
            sink.add("unknown-provider", f"no embedding models for provider `{provider or emb.target.value}`",
                     emb.target.span, "not an embedding provider", did_you_mean(provider, EMBEDDERS)
                     or "write `provider/model`, with provider one of: " + ", ".join(EMBEDDERS))
            continue
        options = embedding_options(provider)
        check_args(emb.options, Signature(options), f"embedding `{emb.name}` ({provider})", sink)
        for arg in emb.options:
            if arg.name in SECRET_OPTIONS and isinstance(arg.value, ir.Literal):
                sink.add("secret-in-source", f"`{arg.name}` of embedding `{emb.name}` is written in the file",
                         arg.value.span, "a key in the source",
                         f'read it from the environment: `{arg.name}: env("NAME")`')
            else:
                _url_credentials(arg.value, f"embedding `{emb.name}`", arg.name, sink)
