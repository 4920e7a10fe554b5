"""What a program spec read from outside (an artifact) must hold before it is built and run.

The compiler only makes specs that hold these; a spec edited by hand may not, and would
fail at call time with a KeyError or TypeError deep in the runtime. `problems` says,
in words and with the part's location, what is wrong instead.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from ..language.catalogue.lms import EMBEDDERS, PROVIDERS, split_target
from ..language.options import AtLeast, Urls, Choice, Within, type_name, url_secrets
from ..language.patterns import pattern_problem
from ..user_code import FORM
from ..language.specs import BranchSpec, ProgramSpec, StepSpec
from .retrieval import Dense
from .state import StepState

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KINDS = ("generate", "chain_of_thought", "decide", "agent")
PRIMITIVES = ("str", "int", "float", "bool")
CONSTRAINTS: Mapping[str, Mapping[str, tuple[type, ...]]] = {
    "int": {"min": (int,), "max": (int,)},
    "float": {"min": (int, float), "max": (int, float)},
    "str": {"min_length": (int,), "max_length": (int,), "pattern": (str,)},
    "list": {"min_items": (int,), "max_items": (int,)},
}
SECRET_OPTIONS = ("api_key",)


def problems(spec: ProgramSpec, states: Mapping[str, StepState]) -> list[str]:
    """Everything in `spec` and `states` that would stop the program from being built or run."""
    found: list[str] = []
    models = {m.name for m in spec.models}
    fields = {m.name: {f.name for f in m.fields} for m in spec.models}
    for model in spec.models:
        for f in model.fields:
            where = f"model `{model.name}`, field `{f.name}`"
            if not NAME.match(f.name):
                found.append(f"{where}: not a field name")
            found += [f"{where}: {p}" for p in _type_problems(f.type, models)]
    for name in (spec.input_model, spec.output_model):
        if name not in models:
            found.append(f"program `{spec.name}`: no model `{name}`")
    lms = {lm.name: lm for lm in spec.lms}
    for lm in spec.lms:
        found += [f"lm `{lm.name}`: {p}" for p in lm_problems(lm.target, lm.options, lms)]
    tools = {t.name for t in spec.tools}
    for tool in spec.tools:
        if not FORM.match(tool.ref):
            found.append(f"tool `{tool.name}`: {tool.ref!r} is not of the form \"module:function\"")
    values = {spec.input_name}
    for item in spec.steps:
        steps = [a.step for a in item.arms] if isinstance(item, BranchSpec) else [item]
        if isinstance(item, BranchSpec) and item.on[0] not in values:
            found.append(f"branch `{item.name}` routes on `{item.on[0]}`, which no earlier step makes")
        for step in steps:
            found += [f"step `{step.path}`: {p}" for p in _step_problems(step, values, fields, lms, tools, states)]
        if item.model not in models:
            found.append(f"step `{item.name}`: no model `{item.model}`")
        values.add(item.name)
    for name in spec.outputs:
        if name not in values:
            found.append(f"output `{name}` is no step of the program")
    for path, state in states.items():
        index = state.retrieval.pool.index if state.retrieval is not None else None
        if isinstance(index, Dense):  # its target is an address the program sends inputs to, like an lm's
            found += [f"step `{path}`: the embedding `{index.embedding.name}` it retrieves with: {p}"
                      for p in embedding_problems(index.embedding.target, index.embedding.options)]
    made = {f for item in spec.steps if item.name in spec.outputs for f in fields.get(item.model, ())}
    output = next((m for m in spec.models if m.name == spec.output_model), None)
    required = [f.name for f in output.fields if not (isinstance(f.type, dict) and "optional" in f.type)] \
        if output and not found else []
    missing = [name for name in required if name not in made]
    if missing:
        found.append(f"the output model `{spec.output_model}` needs fields no output makes: {', '.join(missing)}")
    return found


def _type_problems(t: Any, models: set[str]) -> list[str]:
    if isinstance(t, str):
        return [] if t in PRIMITIVES else [f"unknown type {t!r}"[:80]]
    if not isinstance(t, dict) or not t:
        return [f"unknown type {t!r}"[:80]]
    if "constrained" in t:
        base = t["constrained"]
        kind = "list" if isinstance(base, dict) and set(base) == {"list"} else base if isinstance(base, str) else None
        allowed = CONSTRAINTS.get(kind or "", {})
        bad = [f"constraint {k!r} does not fit {kind or 'this type'}" for k, v in t.items() if k != "constrained"
               and (k not in allowed or not isinstance(v, allowed[k]) or isinstance(v, bool))]
        problem = pattern_problem(t["pattern"]) if "pattern" in t and not bad else None
        if problem:
            bad.append(f"pattern {t['pattern'][:40]!r} cannot be used: {problem}")
        return bad or _type_problems(base, models)
    if len(t) != 1:
        return [f"unknown type {t!r}"[:80]]
    (kind, arg), = t.items()
    if kind in ("list", "optional"):
        return _type_problems(arg, models)
    if kind == "enum":
        ok = isinstance(arg, list) and arg and all(isinstance(a, str) for a in arg)
        return [] if ok else ["an enum needs a list of labels (strings)"]
    if kind == "model":
        return [] if arg in models else [f"no model {arg!r}"[:80]]
    return [f"unknown type {kind!r}"[:80]]


def lm_problems(target: str, options: Mapping[str, Any], lms: Mapping[str, Any]) -> list[str]:
    """What keeps an LM of this `target` and `options` from working (`lms`: the program's, by name)."""
    provider, _ = split_target(target)
    if provider not in PROVIDERS:
        return [f"unknown provider in {target!r}; known: {', '.join(PROVIDERS)}"]
    return _option_problems(provider, PROVIDERS[provider].signature.options, options, lms)


def embedding_problems(target: str, options: Mapping[str, Any]) -> list[str]:
    """What keeps an embedding model of this `target` and `options` from working."""
    provider, _ = split_target(target)
    if provider not in EMBEDDERS:
        return [f"no embedding models for {target!r}; known providers: {', '.join(EMBEDDERS)}"]
    return _option_problems(provider, EMBEDDERS[provider].options.options, options, {})


def _option_problems(provider: str, allowed: Mapping[str, Any], options: Mapping[str, Any],
                     lms: Mapping[str, Any]) -> list[str]:
    found = []
    for key, value in options.items():
        if key not in allowed:
            found.append(f"{provider} has no option `{key}`")
        elif key == "fallback":
            if value not in lms:
                found.append(f"falls back to `{value}`, which is not among its lms")
        elif key in SECRET_OPTIONS and not _is_env(value):
            found.append(f"option `{key}` must name an environment variable, as {{\"env\": NAME}}")
        elif any(isinstance(v, str) and url_secrets(v) for v in (value if isinstance(value, list) else [value])):
            found.append(f"option `{key}` holds credentials in a URL; a URL with them must come from an environment "
                         f"variable, as {{\"env\": NAME}}")
        elif not _fits(value, allowed[key]):
            found.append(f"option `{key}` must be {type_name(allowed[key])}" + (
                ' or {"env": NAME}' if allowed[key] is str else ""))
    return found


def _is_env(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str)


def _fits(value: Any, kind: Any) -> bool:
    """Whether a stored option value fits its type; strings may be stored as {"env": NAME}."""
    if isinstance(kind, Within):
        return _fits(value, kind.kind) and (kind.low < value if kind.strict else kind.low <= value) \
            and value <= kind.high
    if isinstance(kind, AtLeast):
        return _fits(value, kind.kind) and (value > kind.low if kind.strict else value >= kind.low)
    if isinstance(kind, Choice):
        return value in kind.values
    if isinstance(kind, Urls):
        items = value if isinstance(value, list) else [value]
        return bool(items) and all(isinstance(v, str) or _is_env(v) for v in items)
    if kind is str and _is_env(value):
        return True
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(kind, type) and isinstance(value, kind)


def _step_problems(step: StepSpec, values: set[str], fields: Mapping[str, set[str]], lms: Mapping[str, Any],
                   tools: set[str], states: Mapping[str, StepState]) -> list[str]:
    models = set(fields)
    found = []
    if step.kind not in KINDS:
        found.append(f"unknown kind {step.kind!r}")
    found += [f"no model `{m}`" for m in dict.fromkeys((step.model, step.answer_model)) if m not in models]
    if step.model in models and step.answer_model in models and not fields[step.model] <= fields[step.answer_model]:
        found.append(f"the LM's answer (`{step.answer_model}`) lacks fields of `{step.model}`")
    found += [f"reads `{s}`, which no earlier step makes" for s in step.sources if s not in values]
    if not step.sources:
        found.append("reads nothing")
    if step.lm not in lms:
        found.append(f"no lm `{step.lm}`")
    found += [f"no tool `{t}`" for t in step.tools if t not in tools]
    if step.kind == "agent" and step.max_steps < 1:
        found.append("an agent needs max_steps of at least 1")
    if step.path not in states:
        found.append("no learned state (instructions and examples) for it")
    elif step.answer_model in fields:
        found += [f"a string bound on `{name}`, which its answer (`{step.answer_model}`) does not have"
                  for name, _ in states[step.path].bounds if name not in fields[step.answer_model]]
    return found
