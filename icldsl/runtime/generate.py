"""The `generate` step: one LM call whose answer is validated into a model."""

from __future__ import annotations

import dataclasses
import logging

from pydantic import BaseModel, ValidationError

from ..lm import LMError, LMRequest, Meter
from ..lm.base import Message, Usage
from ..lm.repair import RepairError, read_object
from .models import dump
from .request import StepRequest

log = logging.getLogger(__name__)


class StepFailure(Exception):
    """A step that produced no valid output; carries the usage it spent."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


class InvalidAnswer(StepFailure):
    """An answer (`text`) that does not read as the step's model (not JSON, or not valid)."""

    def __init__(self, message: str, usage: Usage, text: str) -> None:
        super().__init__(message, usage)
        self.text = text


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
        raise InvalidAnswer(f"answer is not JSON: {exc}", usage, text) from None
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'output'}: {e['msg']}" for e in exc.errors())
        raise InvalidAnswer(f"answer does not match `{model_name}`: {errors}", usage, text) from None


async def generate(first: StepRequest, meter: Meter) -> tuple[dict, Usage]:
    """Send `first` and read its answer; an answer that does not validate is asked for once
    more, with the model shown its answer and the error; StepFailure when that one fails too."""
    request = first.request
    try:
        parsed, _, usage = await answer(meter, request, first.reads, first.reads_name, Usage())
        return parsed, usage
    except InvalidAnswer as refused:
        log.debug("%s: %s; retrying once with the error shown", meter.name, refused)
        retry = dataclasses.replace(request, messages=(
            *request.messages,
            Message("assistant", refused.text.strip() or "(empty answer)"),
            Message("user", RETRY_PROMPT.format(error=refused)),
        ))
        spent = refused.usage
    parsed, _, usage = await answer(meter, retry, first.reads, first.reads_name, spent)
    return parsed, usage


async def answer(meter: Meter, request: LMRequest, model: type[BaseModel], model_name: str,
                 spent: Usage) -> tuple[dict, str, Usage]:
    """Send `request` and read the answer into `model`: the answer dumped, its text, and
    the usage so far (`spent` and this call's). StepFailure when no answer comes,
    InvalidAnswer when it does not validate; the meter is told what was read."""
    try:
        response = await meter.complete(request)
    except LMError as exc:
        raise StepFailure(f"LM call failed: {exc}", spent) from None
    usage = spent + response.usage
    try:
        parsed = validate_answer(model, model_name, response.text, usage)
    except InvalidAnswer as refused:
        meter.read(refused=str(refused))
        raise
    meter.read(output=parsed)
    return parsed, response.text, usage
