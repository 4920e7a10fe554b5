"""The `generate` step: one LM call whose answer is validated into a model."""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from pydantic import BaseModel, ValidationError

from ..lm import DECODING_OPTIONS, LMClient, LMError, LMRequest
from ..lm.base import Usage
from . import prompt
from .models import dump
from .spec import LMSpec
from .state import StepState


class StepFailure(Exception):
    """A step that produced no valid output; carries the usage it spent."""

    def __init__(self, message: str, usage: Usage | None = None) -> None:
        super().__init__(message)
        self.usage = usage or Usage()


def resolve_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """LM options with `{"env": NAME}` replaced by the variable's value (dropped if unset)."""
    resolved = {}
    for key, value in options.items():
        if isinstance(value, dict) and set(value) == {"env"}:
            value = os.environ.get(value["env"])
            if value is None:
                continue
        resolved[key] = value
    return resolved


async def generate(
    model: type[BaseModel],
    model_name: str,
    state: StepState,
    inputs: Mapping[str, Any],
    lm: LMSpec,
    client: LMClient,
) -> tuple[dict, Usage]:
    """Prompt the LM with the step's state and `inputs`; return the validated output."""
    schema = model.model_json_schema(by_alias=True)
    decoding = {k: v for k, v in resolve_options(lm.options).items() if k in DECODING_OPTIONS}
    request = LMRequest(
        messages=prompt.render(state, schema, inputs),
        schema=schema,
        schema_name=model_name,
        **decoding,
    )
    try:
        response = await client.complete(request)
    except LMError as exc:
        raise StepFailure(f"LM call failed: {exc}") from None
    try:
        return dump(model.model_validate(prompt.parse_json_object(response.text))), response.usage
    except json.JSONDecodeError as exc:
        raise StepFailure(f"answer is not JSON ({exc.msg}): {response.text[:200]!r}", response.usage) from None
    except ValidationError as exc:
        errors = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'output'}: {e['msg']}" for e in exc.errors())
        raise StepFailure(f"answer does not match `{model_name}`: {errors}", response.usage) from None
