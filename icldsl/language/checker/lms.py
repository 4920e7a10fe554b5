"""Rules for `lm` and `embedding` blocks: provider and model, options, fallbacks, and
secrets that must come from the environment."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from .. import ir
from ..catalogue.lms import EMBEDDERS, PROVIDERS, split_target
from ..diagnostics import Sink, did_you_mean
from ..options import LM_NAME, AtLeast, Signature, Within, matches, type_name, url_secrets
from ..vocabulary import SECRET_OPTIONS
from .common import check_args, first


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


def _worded_here(t: Any) -> bool:
    """Whether this rule words a value outside type `t`'s range itself (`_out_of_range`): an open
    range, or one of numbers; `check_args` words the others (`max_concurrency`'s)."""
    return isinstance(t, AtLeast) or (isinstance(t, Within) and t.kind is float)


def _types(signature: Signature) -> Signature:
    """`signature` with the ranges this rule words itself reduced to their kinds, for `check_args`."""
    return dataclasses.replace(signature, options={
        name: t.kind if _worded_here(t) else t for name, t in signature.options.items()})


def _out_of_range(name: str, t: Any, value: ir.Literal) -> str | None:
    """What is wrong with a number of the right kind outside its declared range, or None."""
    if not _worded_here(t) or matches(value, t):
        return None
    if isinstance(t, Within):
        return f"{name} must be between {t.low:g} and {t.high:g}"
    if t.low == 0 and not t.strict:
        return f"`{name}` cannot be negative"
    if t.low == 0 or (t.kind is int and t.low == 1):
        return f"`{name}` must be greater than 0"
    return f"`{name}` must be {type_name(t)}"


def _check_values(options: tuple[ir.Arg, ...], signature: Signature, owner: str, sink: Sink) -> None:
    """Secrets written in the file, and numbers outside their declared ranges, of an lm's or an
    embedding's options (their types are `check_args`'s)."""
    types = _types(signature).options
    for arg in options:
        value = arg.value
        if _url_credentials(value, owner, arg.name, sink):
            continue
        if not isinstance(value, ir.Literal) or not matches(value, types.get(arg.name, object)):
            continue
        if arg.name in SECRET_OPTIONS:
            sink.add("secret-in-source", f"`{arg.name}` of {owner} is written in the file", value.span,
                     "a key in the source", f'read it from the environment: `{arg.name}: env("NAME")`')
            continue
        problem = _out_of_range(arg.name, signature.options[arg.name], value)
        if problem:
            sink.add("invalid-value", problem, value.span)


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
        signature = PROVIDERS[provider].signature
        check_args(lm.options, _types(signature), f"lm `{lm.name}` ({provider})", sink)
        for arg in lm.options:
            if arg.name == "fallback" and matches(arg.value, LM_NAME):
                _check_fallback(lm, arg.value, lms, sink)
        _check_values(lm.options, signature, f"lm `{lm.name}`", sink)


def check_embeddings(module: ir.Module, sink: Sink) -> None:
    for emb in module.of(ir.Embedding):
        provider, _ = split_target(emb.target.value)
        if provider not in EMBEDDERS:
            sink.add("unknown-provider", f"no embedding models for provider `{provider or emb.target.value}`",
                     emb.target.span, "not an embedding provider", did_you_mean(provider, EMBEDDERS)
                     or "write `provider/model`, with provider one of: " + ", ".join(EMBEDDERS))
            continue
        signature = EMBEDDERS[provider].signature
        check_args(emb.options, _types(signature), f"embedding `{emb.name}` ({provider})", sink)
        _check_values(emb.options, signature, f"embedding `{emb.name}`", sink)
