"""Pydantic models built from model specs."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from .spec import ModelSpec

_PRIMITIVES = {"str": str, "int": int, "float": float, "bool": bool}


class IclModel(BaseModel):
    """Base of every model a `.icl` file declares. Fields whose names clash with
    pydantic's own attributes are stored under a suffixed name and keep their
    declared name as alias, so dump with `by_alias=True`."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, extra="ignore")


def _python_type(t: Any, built: dict[str, type[BaseModel]]) -> Any:
    if isinstance(t, str):
        return _PRIMITIVES[t]
    (kind, arg), = t.items()
    if kind == "list":
        return list[_python_type(arg, built)]
    if kind == "optional":
        return Optional[_python_type(arg, built)]
    if kind == "enum":
        return Literal[tuple(arg)]
    return built[arg]


def _safe_name(name: str) -> str:
    return name + "_" if name.startswith(("model_", "_")) or hasattr(BaseModel, name) else name


def build_models(specs: tuple[ModelSpec, ...]) -> dict[str, type[BaseModel]]:
    """Build every model; `specs` must list a model after the models it uses."""
    built: dict[str, type[BaseModel]] = {}
    for spec in specs:
        fields: dict[str, Any] = {}
        for f in spec.fields:
            annotation = _python_type(f.type, built)
            default = None if isinstance(f.type, dict) and "optional" in f.type else ...
            alias = f.name if _safe_name(f.name) != f.name else None
            fields[_safe_name(f.name)] = (annotation, Field(default, description=f.description, alias=alias))
        built[spec.name] = create_model(spec.name, __base__=IclModel, **fields)
    return built


def dump(obj: BaseModel) -> dict[str, Any]:
    """A model as plain JSON values, under its declared field names."""
    return obj.model_dump(mode="json", by_alias=True)
