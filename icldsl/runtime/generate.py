"""The `generate` step: one LM call whose answer is validated into a model."""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from ..lm import DECODING_OPTIONS, LMClient, LMError, LMRequest
from ..lm.base import LMResponse, Message, Usage
from ..lm.repair import RepairError, read_object
from . import prompt
from .models import dump, json_schema
from ..specs import LMSpec
from .state import StepState

log = logging.getLogger(__name__)


class StepFailure(Exception):
    """A step that produced no valid output; carries the usage it spent."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """LM options with `{"env": NAME}` replaced by the variable's value (dropped if unset),
    also inside a list (`base_url: [env("A"), env("B")]`)."""

    def is_env(value: Any) -> bool:
        return isinstance(value, dict) and set(value) == {"env"}

    resolved = {}
    for key, value in options.items():
        if isinstance(value, list):
            value = [os.environ.get(v["env"]) if is_env(v) else v for v in value]
            value = [v for v in value if v is not None]
        elif is_env(value):
            value = os.environ.get(value["env"])
            if value is None:
                continue
        resolved[key] = value
    return resolved


def decoding_options(lm: LMSpec) -> dict[str, Any]:
    """The options of an LM that travel with each request (temperature, max_tokens, seed)."""
    return {k: v for k, v in resolve_options(lm.options).items() if k in DECODING_OPTIONS}


class InvalidAnswer(StepFailure):
    """An answer that does not read as the step's model (not JSON, or not valid)."""


# The turn that shows a model why its answer was refused, before its one retry.
RETRY_PROMPT = (
    "Your answer could not be used: {error}. Answer the same input again with one JSON object, "
    "and nothing else, that follows the schema."
)


def validate_answer(model: type[BaseModel], model_name: str, text: str, usage: Usage) -> dict:
    """The LM's answer, read leniently (see `lm.repair`) and validated, dumped;
    InvalidAnswer when it is not one."""
    try:
        return dump(model.model_validate(read_object(text)))
    except RepairError as exc:
        raise InvalidAnswer(f"answer is not JSON: {exc}", usage) from None
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'output'}: {e['msg']}" for e in exc.errors())
        raise InvalidAnswer(f"answer does not match `{model_name}`: {errors}", usage) from None


async def generate(
    model: type[BaseModel],
    model_name: str,
    state: StepState,
    inputs: Mapping[str, Any],
    lm: LMSpec,
    client: LMClient,
) -> tuple[dict, Usage]:
    """Prompt the LM with the step's state and `inputs`; return the validated output.

    An answer that does not validate is asked for once more, with the model shown
    its answer and the error; StepFailure when that one fails too.
    """
    schema = json_schema(model)
    request = LMRequest(
        messages=prompt.render(state, schema, inputs),
        schema=schema,
        schema_name=model_name,
        **decoding_options(lm),
    )
    response = await _complete(client, request, Usage())
    try:
        return validate_answer(model, model_name, response.text, response.usage), response.usage
    except InvalidAnswer as refused:
        log.debug("%s: %s; retrying once with the error shown", client.name, refused)
        retry = dataclasses.replace(request, messages=(
            *request.messages,
            Message("assistant", response.text.strip() or "(empty answer)"),
            Message("user", RETRY_PROMPT.format(error=refused)),
        ))
    second = await _complete(client, retry, response.usage)
    usage = response.usage + second.usage
    return validate_answer(model, model_name, second.text, usage), usage


async def _complete(client: LMClient, request: LMRequest, spent: Usage) -> LMResponse:
    try:
        return await client.complete(request)
    except LMError as exc:
        raise StepFailure(f"LM call failed: {exc}", spent) from None
