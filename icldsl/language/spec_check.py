"""What a program spec must hold before it is built and run: `problems`, the one list of
the rules a spec read from outside (an artifact) is checked against.

The compiler only makes specs that hold these; a spec edited by hand may not, and would
fail at call time with a KeyError or TypeError deep in the runtime. `problems` says,
in words and with the part's location, what is wrong instead. Its words come from
`vocabulary` (step kinds, types, constraints, secret options) and its option types from
`options` (`fits`, the same fit `matches` gives a value written in a file), which the
checker reads too; the rule on constraint values (`constraint_problems`) is the checker's
as well; the providers and their options are the catalogue's (`catalogue.lms`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from .catalogue.lms import EMBEDDERS, PROVIDERS, split_target
from .options import fits, type_name, url_secrets
from .patterns import pattern_problem
from .specs import BranchSpec, EmbeddingSpec, ProgramSpec, StepSpec
from .vocabulary import (CONSTRAINT_RANGES, CONSTRAINTS, COUNTS, PRIMITIVE_TYPES, SECRET_OPTIONS, STEP_KINDS,
                         function_ref_problem)

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class State(Protocol):
    """What `problems` reads of a step's learned state (`runtime.state.StepState`): the fields
    its string bounds are for, and the embedding model its retrieval sends inputs to, if any."""

    @property
    def bounds(self) -> tuple[tuple[str, int], ...]: ...

    @property
    def embedding(self) -> EmbeddingSpec | None: ...


@dataclass(frozen=True, slots=True)
class Problem:
    """A mistake in constraints, with what a diagnostic shows of it: `option` is the
    constraint to point at (None: the whole type), `label` and `help` its words there."""

    message: str
    option: str | None = None
    label: str = ""
    help: str | None = None


def constraint_problems(given: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with constraint values `given` (name -> value, each of the type `CONSTRAINTS`
    says), which their types do not show: a lower bound above its upper bound, a negative count,
    a pattern the runtime cannot use. The checker and `problems` both ask this."""
    found = [Problem(f"`{low}` is greater than `{high}`", label="nothing can satisfy this")
             for low, high in CONSTRAINT_RANGES if low in given and high in given and given[low] > given[high]]
    found += [Problem(f"`{name}` cannot be negative") for name in COUNTS if given.get(name, 0) < 0]
    problem = pattern_problem(given["pattern"]) if "pattern" in given else None
    if problem:
        found.append(Problem(f"`pattern` cannot be used: {problem}", "pattern", "bad pattern",
                             "field patterns follow Rust's regex syntax: no look-around or back-references, "
                             "and a bounded size"))
    return found


def problems(spec: ProgramSpec, states: Mapping[str, State]) -> list[str]:
    """Everything in `spec` and its steps' learned `states` (by step path) that would stop the
    program from being built or run, each prefixed with the part it is in."""
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
        problem = function_ref_problem(tool.ref)
        if problem:
            found.append(f"tool `{tool.name}`: {problem}")
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
        embedding = state.embedding  # its target is an address the program sends inputs to, like an lm's
        if embedding is not None:
            found += [f"step `{path}`: the embedding `{embedding.name}` it retrieves with: {p}"
                      for p in embedding_problems(embedding.target, embedding.options)]
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
        return [] if t in PRIMITIVE_TYPES else [f"unknown type {t!r}"[:80]]
    if not isinstance(t, dict) or not t:
        return [f"unknown type {t!r}"[:80]]
    if "constrained" in t:
        base = t["constrained"]
        kind = "list" if isinstance(base, dict) and set(base) == {"list"} else base if isinstance(base, str) else None
        allowed = CONSTRAINTS.get(kind or "", {})
        given = {k: v for k, v in t.items() if k != "constrained"}
        bad = [f"constraint {k!r} does not fit {kind or 'this type'}" for k, v in given.items()
               if k not in allowed or not fits(v, allowed[k])]
        bad = bad or [p.message for p in constraint_problems(given)]
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
        return [] if isinstance(arg, str) and arg in models else [f"no model {arg!r}"[:80]]
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
    return _option_problems(provider, EMBEDDERS[provider].signature.options, options, {})


def _option_problems(provider: str, allowed: Mapping[str, Any], options: Mapping[str, Any],
                     lms: Mapping[str, Any]) -> list[str]:
    found = []
    for key, value in options.items():
        if key not in allowed:
            found.append(f"{provider} has no option `{key}`")
        elif key == "fallback":
            if not isinstance(value, str) or value not in lms:
                found.append(f"falls back to `{value}`, which is not among its lms")
        elif key in SECRET_OPTIONS and not _is_env(value):
            found.append(f"option `{key}` must name an environment variable, as {{\"env\": NAME}}")
        elif any(isinstance(v, str) and url_secrets(v) for v in (value if isinstance(value, list) else [value])):
            found.append(f"option `{key}` holds credentials in a URL; a URL with them must come from an environment "
                         f"variable, as {{\"env\": NAME}}")
        elif not fits(value, allowed[key], env=True):
            found.append(f"option `{key}` must be {type_name(allowed[key])}" + (
                ' or {"env": NAME}' if allowed[key] is str else ""))
    return found


def _is_env(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str)


def _step_problems(step: StepSpec, values: set[str], fields: Mapping[str, set[str]], lms: Mapping[str, Any],
                   tools: set[str], states: Mapping[str, State]) -> list[str]:
    models = set(fields)
    found = []
    if step.kind not in STEP_KINDS:
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
