"""A user's own Python function, named "module:function" in a `.icl` file.

Two ways to reach it. `locate` runs nothing: it finds the module the way the import
system would (the same finders, `search_path` before `sys.path`) and parses its source,
so `check`, `fmt`, `plan`, `render` and `graph` can judge a file from a stranger.
`load_function` imports the module, which runs its code: only `fit`, `eval` and `run`,
which run the program, do that.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import sys
import typing
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import Error
from .language.vocabulary import function_ref_problem

MAX_MODULE_BYTES = 4 * 1024 * 1024  # a module's source read to be parsed


class UserCodeError(Error):
    """A "module:function" that cannot be found, parsed or imported, or is not a function."""


def _split(ref: str) -> tuple[str, str]:
    problem = function_ref_problem(ref)
    if problem:
        raise UserCodeError(problem)
    module, _, function = ref.partition(":")
    return module, function


# ---- finding and parsing, without running anything -----------------------------------------


def find_module(name: str, search_path: Sequence[Path] = ()) -> ModuleSpec:
    """Where importing `name` (with `search_path` first on `sys.path`) would load it from.

    Asks the import system's finders one dotted part at a time, so no package's
    `__init__` runs on the way; UserCodeError when there is no such module.
    """
    spec: ModuleSpec | None = None
    parts = name.split(".")
    for i in range(len(parts)):
        fullname = ".".join(parts[: i + 1])
        if i == 0:
            path = None
        elif spec is not None and spec.submodule_search_locations is not None:
            path = list(spec.submodule_search_locations)
        else:
            raise UserCodeError(f"cannot find module {name!r}: {'.'.join(parts[:i])!r} is not a package")
        spec = _find_spec(fullname, path, search_path)
        if spec is None:
            where = " or beside the .icl file" if search_path else ""
            raise UserCodeError(f"cannot find module {fullname!r} on sys.path{where}")
    assert spec is not None
    return spec


def _find_spec(fullname: str, path: list[str] | None, search_path: Sequence[Path]) -> ModuleSpec | None:
    for finder in sys.meta_path:
        find = getattr(finder, "find_spec", None)
        if find is None:
            continue
        if finder is importlib.machinery.PathFinder and path is None:
            spec = find(fullname, [*(str(p) for p in search_path), *sys.path])
        else:
            spec = find(fullname, path)
        if spec is not None:
            return spec
    return None


def _origin(spec: ModuleSpec) -> Path | None:
    return Path(spec.origin).resolve() if spec.has_location and spec.origin else None


@dataclass(frozen=True, slots=True)
class Located:
    """A function found without importing it. `definition` is its `def` when the module has
    Python source that defines it so; None when the name is bound another way (an import,
    an assignment, a class) or the module has no source (built in or compiled), which
    only running it can judge."""

    ref: str
    origin: Path | None
    definition: ast.FunctionDef | ast.AsyncFunctionDef | None

    def accepts(self, positional: int) -> bool:
        """Whether a call with `positional` arguments binds (true when it cannot be told)."""
        if self.definition is None:
            return True
        args = self.definition.args
        named = [*args.posonlyargs, *args.args]
        required = len(named) - len(args.defaults)
        kw_required = sum(d is None for d in args.kw_defaults)
        return required <= positional and (len(named) >= positional or args.vararg is not None) and not kw_required

    def signature_text(self) -> str:
        return f"({ast.unparse(self.definition.args)})" if self.definition else "(...)"

    def docstring(self) -> str:
        return (ast.get_docstring(self.definition) or "") if self.definition else ""

    def parameters(self) -> list[tuple[str, Any, Any]]:
        """(name, type, default) of each parameter that a keyword can fill, read from the source:
        annotations of built-in types and typing's generics become those types, any other
        `Any`; a default that is not a literal counts as none given (`...`)."""
        if self.definition is None:
            return []
        args = self.definition.args
        named = [*args.posonlyargs, *args.args]
        defaults = [...] * (len(named) - len(args.defaults)) + list(args.defaults)
        pairs = [*zip(named[len(args.posonlyargs):], defaults[len(args.posonlyargs):]),
                 *zip(args.kwonlyargs, args.kw_defaults)]
        return [(a.arg, annotation_type(a.annotation), _literal(d)) for a, d in pairs]


def locate(ref: str, search_path: Sequence[Path] = ()) -> Located:
    """Find "module:function" and its definition without running any of the module's code."""
    module, function = _split(ref)
    spec = find_module(module, search_path)
    origin = _origin(spec)
    if origin is None or origin.suffix != ".py":
        if spec.origin in (None, "namespace") and spec.submodule_search_locations is not None:
            raise UserCodeError(f"module {module!r} has no function {function!r} (it is a folder without code)")
        return Located(ref, origin, None)
    tree = parse_module(origin, module)
    bound = _binding(tree.body, function)
    if bound is None:
        raise UserCodeError(f"module {module!r} has no function {function!r}")
    return Located(ref, origin, bound if isinstance(bound, (ast.FunctionDef, ast.AsyncFunctionDef)) else None)


def parse_module(path: Path, name: str) -> ast.Module:
    """The syntax tree of a module's source; UserCodeError for a file too large or not Python."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MODULE_BYTES + 1)
    except OSError as exc:
        raise UserCodeError(f"cannot read module {name!r} ({path}): {exc.strerror}") from None
    if len(data) > MAX_MODULE_BYTES:
        raise UserCodeError(f"module {name!r} ({path}) is larger than {MAX_MODULE_BYTES // 2**20} MB")
    try:
        return ast.parse(data, filename=str(path))
    except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes in the source
        where = f" ({path}:{exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else f" ({path})"
        raise UserCodeError(f"cannot import {name!r}: {type(exc).__name__}: {exc.args[0]}{where}") from None
    except (RecursionError, MemoryError):  # an expression nested past what Python's parser builds
        raise UserCodeError(f"cannot read module {name!r} ({path}): an expression in it is nested too deeply "
                            "for Python to parse") from None


def _binding(body: list[ast.stmt], name: str) -> ast.AST | None:
    """The last top-level statement that binds `name` (looking into if/try/with blocks);
    `from m import *` counts, since it may."""
    found = None
    for stmt in body:
        if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and stmt.name == name:
            found = stmt
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            for alias in stmt.names:
                if alias.name == "*" or (alias.asname or alias.name.split(".")[0]) == name:
                    found = stmt
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            if any(isinstance(n, ast.Name) and n.id == name for t in targets for n in ast.walk(t)):
                found = stmt
        else:
            for block in ("body", "orelse", "finalbody", "handlers"):
                inner = getattr(stmt, block, None)
                if isinstance(inner, list) and inner and isinstance(inner[0], (ast.stmt, ast.excepthandler)):
                    stmts = [s for h in inner for s in h.body] if block == "handlers" else inner
                    found = _binding(stmts, name) or found
    return found


_TYPES: dict[str, Any] = {
    "str": str, "int": int, "float": float, "bool": bool, "bytes": bytes, "list": list, "dict": dict,
    "tuple": tuple, "set": set, "frozenset": frozenset, "None": None,
    **{name: getattr(typing, name) for name in (
        "Any", "Optional", "Union", "List", "Dict", "Tuple", "Set", "FrozenSet", "Literal", "Sequence",
        "Mapping", "Iterable")},
}


def annotation_type(node: ast.expr | None) -> Any:
    """The type an annotation names, built only from known names (never evaluated); `Any`
    for anything else."""
    if node is None:
        return Any
    try:
        return _evaluate(node)
    except (KeyError, TypeError, ValueError, SyntaxError, RecursionError):
        return Any


def _evaluate(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a quoted annotation
        return _evaluate(ast.parse(node.value, mode="eval").body)
    if isinstance(node, ast.Constant) and node.value is None:
        return None
    if isinstance(node, ast.Name):
        return _TYPES[node.id]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ("typing", "t"):
        return _TYPES[node.attr]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return typing.Union[_evaluate(node.left), _evaluate(node.right)]
    if isinstance(node, ast.Subscript):
        base = _evaluate(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        if base is typing.Literal:
            return typing.Literal[tuple(ast.literal_eval(i) for i in items)]
        args = tuple(_evaluate(i) for i in items)
        return base[args if len(args) > 1 else args[0]]
    raise ValueError("not a known type")


def _literal(node: ast.expr | None) -> Any:
    if node is None or node is ...:
        return ...
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError):
        return ...


# ---- importing, which runs the module -------------------------------------------------------


def load_function(ref: str, search_path: Sequence[Path] = (), *, barred: Sequence[Path] = ()) -> Callable[..., Any]:
    """Import `ref`, looking first in `search_path` (such as the .icl file's folder), then `sys.path`.

    A module that would come from a folder in `barred` (an artifact's own folder) is
    refused before it runs. Whatever importing the module raises (a missing module, a
    syntax error, an exception at import time) becomes a UserCodeError that says so.
    """
    module_name, function_name = _split(ref)
    if barred and module_name not in sys.modules:
        origin = _origin(find_module(module_name, search_path))
        folders = [Path(b).resolve() for b in barred]
        if origin is not None and any(f == origin.parent or f in origin.parents for f in folders):
            raise UserCodeError(f"module {module_name!r} would be imported from {origin}, in the artifact's own "
                                "folder, which is never trusted with code: install the module, or keep it in "
                                "another folder on sys.path")
    extra = [str(p) for p in search_path if str(p) not in sys.path]
    sys.path[:0] = extra
    importlib.invalidate_caches()  # a module written since the last import is found
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a user's module: whatever importing it raises, or its exit
        raise UserCodeError(f"cannot import {module_name!r}: {type(exc).__name__}: {exc}") from None
    finally:
        for entry in extra:
            sys.path.remove(entry)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UserCodeError(f"module {module_name!r} has no function {function_name!r}")
    return function
