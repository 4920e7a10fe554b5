"""The exact messages each LM step would send, without calling an LM.

A step's input comes from the program's input (given, or placeholders) and
from earlier steps, whose outputs are unknown until they run: their fields
show as `<step.field>` placeholders. A step that retrieves examples shows the
ones its input would get when that input is known (with an embedding retriever,
the input is embedded: an embedding call, through the cache); otherwise `note`
says how many it retrieves; with a vote weight, the answers the LM scores and their priors.
Each step also says the length bound of each string field of
its answer and where it comes from (runtime/bounds.py).

Not a run against a client that records requests, on purpose: a run takes one arm of
a branch and needs answers that validate, where render shows every arm with the
unknown fields as placeholders. It builds each request with the run's own
`Program.step_request` (runtime/request.py), so what it shows is what a run sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..lm.base import Message
from ..language.specs import StepSpec
from .bounds import FieldBound, bounds_text, describe
from .program import Program
from .tools import describe_tools


@dataclass(frozen=True, slots=True)
class RenderedStep:
    step: StepSpec
    messages: tuple[Message, ...]
    retrieved: tuple[str, ...] = ()  # origins of the retrieved examples shown, in prompt order
    note: str | None = None
    bounds: tuple[FieldBound, ...] = ()  # the length bound of each string field of the answer (not an agent's)
    choices: tuple[tuple[str, float], ...] = ()  # the answers a scoring LM chooses among, with their priors


async def render_program(program: Program, inputs: Mapping[str, Any] | None = None) -> list[RenderedStep]:
    """Every LM step's messages, in the order the steps run (branch arms one after another),
    as `Program.step_request` builds them for a run."""
    spec = program.spec
    values: dict[str, dict[str, Any]] = {
        spec.input_name: program.validate_input(inputs) if inputs is not None
        else _placeholders(spec.input_name, program.models[spec.input_model]),
    }
    for item in spec.steps:
        values[item.name] = _placeholders(item.name, program.models[item.model])
    rendered = []
    lms = {lm.name: lm for lm in spec.lms}
    tools = describe_tools(spec.tools, program.search_path)  # from their source: render runs no user code
    for step in spec.lm_steps():
        merged = {k: v for source in step.sources for k, v in values[source].items()}
        retrieval, note = program.states[step.path].retrieval, None
        known = inputs is not None and step.sources == (spec.input_name,)
        if retrieval is not None and not known:
            note = (f"retrieves the {retrieval.k} examples nearest each input from a pool of "
                    f"{len(retrieval.pool.demos)}" + ("; give --input to see them" if inputs is None else
                                                      "; this step's input is known only when it runs"))
            program = program.with_states({**program.states, step.path: program.states[step.path].with_retrieval(None)})
        first, retrieved = await program.step_request(step, merged, tools)
        found = () if step.kind == "agent" else describe(program.models[step.answer_model],
                                                         program.states[step.path].bounds, lms[step.lm])
        rendered.append(RenderedStep(step, first.request.messages, tuple(d.origin for d in retrieved), note, found,
                                     first.request.choices))
    return rendered


def _placeholders(name: str, model) -> dict[str, Any]:
    return {field.alias or key: f"<{name}.{field.alias or key}>" for key, field in model.model_fields.items()}


def render_text(program: Program, steps: list[RenderedStep]) -> str:
    """What `icldsl render` prints (and the editor's preview shows): each step's header, what it
    retrieved or why not, its string bounds, and its messages."""
    lines = []
    for rendered in steps:
        step = rendered.step
        target = next((lm.target for lm in program.spec.lms if lm.name == step.lm), step.lm)
        lines.append(f"=== {step.path}: {step.kind} {step.model} using {step.lm} ({target}) ===")
        if rendered.retrieved:
            lines.append(f"(retrieved for this input, in prompt order: {', '.join(rendered.retrieved)})")
        if rendered.note:
            lines.append(f"({rendered.note})")
        if rendered.bounds:
            lines.append(f"(string bounds: {bounds_text(rendered.bounds)})")
        if rendered.choices:
            lines.append("(the LM scores these answers, each with its prior, the vote weight x log(its share of the "
                         "examples): " + ", ".join(f"{text} {prior:+.3f}" for text, prior in rendered.choices) + ")")
        lines += [f"--- {message.role}\n{message.content}" for message in rendered.messages]
        lines.append("")
    return "\n".join(lines) + "\n" if lines else ""
