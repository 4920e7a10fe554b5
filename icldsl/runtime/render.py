"""The exact messages each LM step would send, without calling an LM.

A step's input comes from the program's input (given, or placeholders) and
from earlier steps, whose outputs are unknown until they run: their fields
show as `<step.field>` placeholders. A step that retrieves examples shows the
ones its input would get when that input is known (with an embedding retriever,
the input is embedded: an embedding call, through the cache); otherwise `note`
says how many it retrieves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..lm.base import Message
from . import prompt
from .agent import _as_finish, turn_model
from .models import json_schema
from .program import Program
from ..specs import StepSpec
from .tools import describe_tools


@dataclass(frozen=True, slots=True)
class RenderedStep:
    step: StepSpec
    messages: tuple[Message, ...]
    retrieved: tuple[str, ...] = ()  # origins of the retrieved examples shown, in prompt order
    note: str | None = None


async def render_program(program: Program, inputs: Mapping[str, Any] | None = None) -> list[RenderedStep]:
    """Every LM step's messages, in the order the steps run (branch arms one after another)."""
    spec = program.spec
    values: dict[str, dict[str, Any]] = {
        spec.input_name: program.validate_input(inputs) if inputs is not None
        else _placeholders(spec.input_name, program.models[spec.input_model]),
    }
    for item in spec.steps:
        values[item.name] = _placeholders(item.name, program.models[item.model])
    rendered = []
    tools = describe_tools(spec.tools, program.search_path)  # from their source: render runs no user code
    for step in spec.lm_steps():
        merged = {k: v for source in step.sources for k, v in values[source].items()}
        state, retrieved, note = program.states[step.path], (), None
        if state.retrieval is not None:
            if inputs is not None and step.sources == (spec.input_name,):
                demos = await state.retrieval.select(merged, program.embed)
                state, retrieved = state.with_examples(state.examples + demos), tuple(d.origin for d in demos)
            else:
                note = (f"retrieves the {state.retrieval.k} examples nearest each input from a pool of "
                        f"{len(state.retrieval.pool.demos)}" + ("; give --input to see them" if inputs is None else
                                                                "; this step's input is known only when it runs"))
        answer = program.models[step.answer_model]
        if step.kind == "agent":
            schema = turn_model(answer, tools).model_json_schema(by_alias=True)
            state = _as_finish(state)
        else:
            schema = json_schema(answer)
        rendered.append(RenderedStep(step, prompt.render(state, schema, merged), retrieved, note))
    return rendered


def _placeholders(name: str, model) -> dict[str, Any]:
    return {field.alias or key: f"<{name}.{field.alias or key}>" for key, field in model.model_fields.items()}
