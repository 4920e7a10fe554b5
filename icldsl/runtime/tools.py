"""Tools an agent step calls: Python callables named "module:function"."""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..errors import Error
from ..user_code import UserCodeError, load_function


class ToolError(Error):
    """A tool that cannot be imported or whose signature cannot be described."""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    function: Callable[..., Any]
    arguments: type[BaseModel]  # validates the LM's arguments; its schema reaches the LM
    description: str

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the tool; what it returns or raises becomes the text the LM reads next."""
        try:
            kwargs = self.arguments.model_validate(arguments).model_dump()
            result = self.function(**kwargs)
            if inspect.isawaitable(result):
                result = await result
        except ValidationError as exc:
            return f"error: bad arguments: {exc.errors()[0]['msg']}"
        except Exception as exc:  # noqa: BLE001 - a user's tool: whatever it raises, the LM reads
            return f"error: {type(exc).__name__}: {exc}"
        return str(result)


def load_tool(name: str, ref: str, search_path: Sequence[Path] = ()) -> Tool:
    """Import `module:function` (looking also in `search_path`, such as the .icl's folder)."""
    try:
        function = load_function(ref, search_path)
    except UserCodeError as exc:
        raise ToolError(f"tool `{name}`: {exc}") from None
    return Tool(name, function, _arguments_model(name, function), inspect.getdoc(function) or "")


def _arguments_model(name: str, function: Callable[..., Any]) -> type[BaseModel]:
    try:
        hints = typing.get_type_hints(function)
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError, NameError) as exc:
        raise ToolError(f"tool `{name}`: cannot read its signature: {exc}") from None
    fields = {
        p.name: (hints.get(p.name, Any), ... if p.default is inspect.Parameter.empty else p.default)
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    return create_model(f"{name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)


def load_tools(specs: Sequence[Any], search_path: Sequence[Path] = ()) -> dict[str, Tool]:
    return {spec.name: load_tool(spec.name, spec.ref, search_path) for spec in specs}


__all__ = ["Tool", "ToolError", "load_tool", "load_tools"]
