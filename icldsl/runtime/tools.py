"""Tools an agent step calls: Python callables named "module:function".

`load_tool` imports the function (the program is about to run); `describe_tool` reads its
parameters and docstring from the module's source without running it, for the commands
that show requests without making them (`render`, `plan`).

A call of a plain function runs off the event loop, in a thread of its own (an `async def`
tool runs on the loop, and must not block it); either may take `TIMEOUT` seconds;
then the LM reads that it timed out and the program goes on. A thread cannot be stopped:
a tool still busy then runs on in the background (a daemon thread, which does not keep
the process alive), and one long C-level operation that holds the interpreter (such as
an enormous `**` of Python ints) stalls everything until it ends, which is why the
bundled calculator bounds its numbers before computing them.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import threading
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import BaseModel, ConfigDict, ValidationError, create_model

from ..errors import Error
from ..user_code import UserCodeError, load_function, locate


TIMEOUT = 30.0  # seconds a tool call may take (docs/language/tool.md)


class ToolError(Error):
    """A tool that cannot be imported or whose signature cannot be described."""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    function: Callable[..., Any] | None  # None: described from its source, not imported, never called
    arguments: type[BaseModel]  # validates the LM's arguments; its schema reaches the LM
    description: str
    timeout: float = TIMEOUT

    async def call(self, arguments: dict[str, Any]) -> str:
        """Run the tool (see the module's docstring); what it returns or raises becomes the
        text the LM reads next, and so does a call that takes longer than `timeout`."""
        try:
            kwargs = self.arguments.model_validate(arguments).model_dump()
        except ValidationError as exc:
            return f"error: bad arguments: {exc.errors()[0]['msg']}"
        try:
            async with asyncio.timeout(self.timeout):
                if inspect.iscoroutinefunction(self.function):
                    result = await self.function(**kwargs)
                else:
                    result = await _in_thread(self.function, kwargs)
                    if inspect.isawaitable(result):
                        result = await result
        except TimeoutError:
            return f"error: the tool did not finish in {self.timeout:g} seconds"
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user's tool: whatever it raises, the LM reads
            return f"error: {type(exc).__name__}: {exc}"
        return result if isinstance(result, str) else str(result)


def _in_thread(function: Callable[..., Any], kwargs: dict[str, Any]) -> asyncio.Future:
    """`function(**kwargs)` in a daemon thread of its own (its result made text there, so a
    huge one is not converted on the event loop); the future of what it returns or raises."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():  # timed out or cancelled meanwhile
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def work() -> None:
        result, error = None, None
        try:
            result = function(**kwargs)
            if not inspect.isawaitable(result):
                result = str(result)
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user's tool: whatever it raises, the LM reads
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop was closed before the tool ended
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=work, name=f"icldsl tool {getattr(function, '__name__', '')}", daemon=True).start()
    return future


def load_tool(name: str, ref: str, search_path: Sequence[Path] = (), *, barred: Sequence[Path] = ()) -> Tool:
    """Import `module:function` (looking also in `search_path`, such as the .icl's folder;
    never from a folder in `barred`, see `load_function`)."""
    try:
        function = load_function(ref, search_path, barred=barred)
    except UserCodeError as exc:
        raise ToolError(f"tool `{name}`: {exc}") from None
    return Tool(name, function, _arguments_model(name, function), inspect.getdoc(function) or "")


def describe_tool(name: str, ref: str, search_path: Sequence[Path] = ()) -> Tool:
    """The tool as its module's source declares it, nothing imported: the same arguments
    model as `load_tool` for parameters annotated with built-in types and typing's generics
    (other annotations accept any value; a function without Python source takes any object)."""
    try:
        located = locate(ref, search_path)
    except UserCodeError as exc:
        raise ToolError(f"tool `{name}`: {exc}") from None
    fields = {p: (kind, default) for p, kind, default in located.parameters()}
    config = ConfigDict(extra="forbid" if located.definition else "allow")
    return Tool(name, None, create_model(f"{name}_arguments", __config__=config, **fields), located.docstring())


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


def load_tools(specs: Sequence[Any], search_path: Sequence[Path] = (), *, barred: Sequence[Path] = ()
               ) -> dict[str, Tool]:
    return {spec.name: load_tool(spec.name, spec.ref, search_path, barred=barred) for spec in specs}


def describe_tools(specs: Sequence[Any], search_path: Sequence[Path] = ()) -> dict[str, Tool]:
    return {spec.name: describe_tool(spec.name, spec.ref, search_path) for spec in specs}


__all__ = ["TIMEOUT", "Tool", "ToolError", "describe_tool", "describe_tools", "load_tool", "load_tools"]
