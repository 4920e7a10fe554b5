"""Pydantic models built from model specs."""

from __future__ import annotations

import weakref
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..language.specs import ModelSpec
from ..language.vocabulary import PRIMITIVE_TYPES


class IclModel(BaseModel):
    """Base of every model a `.icl` file declares. Fields whose names clash with
    pydantic's own attributes are stored under a suffixed name and keep their
    declared name as alias, so dump with `by_alias=True`."""

    model_config = ConfigDict(protected_namespaces=(), populate_by_name=True, extra="ignore")


def _python_type(t: Any) -> Any:
    """The annotation of a JSON type; models are named, resolved by `model_rebuild`."""
    if isinstance(t, str):
        return PRIMITIVE_TYPES[t]
    if "constrained" in t:
        return Annotated[_python_type(t["constrained"]), _constraint(t)]
    (kind, arg), = t.items()
    if kind == "list":
        return list[_python_type(arg)]
    if kind == "optional":
        return Optional[_python_type(arg)]
    if kind == "enum":
        return Literal[tuple(arg)]
    return arg  # a model, by name: a forward reference


# Each constraint of the vocabulary (`language.vocabulary.CONSTRAINTS`) as pydantic's `Field` takes it.
PYDANTIC_CONSTRAINTS = {"min": "ge", "max": "le", "min_length": "min_length", "max_length": "max_length",
                        "pattern": "pattern", "min_items": "min_length", "max_items": "max_length"}


def _constraint(t: Mapping[str, Any]) -> Any:
    return Field(**{PYDANTIC_CONSTRAINTS[k]: v for k, v in t.items() if k != "constrained"})


def _safe_name(name: str) -> str:
    return name + "_" if name.startswith(("model_", "_")) or hasattr(BaseModel, name) else name


def build_models(specs: tuple[ModelSpec, ...]) -> dict[str, type[BaseModel]]:
    """Build every model; models may refer to each other (and to themselves) by name."""
    built: dict[str, type[BaseModel]] = {}
    for spec in specs:
        fields: dict[str, Any] = {}
        for f in spec.fields:
            default = None if isinstance(f.type, dict) and "optional" in f.type else ...
            alias = f.name if _safe_name(f.name) != f.name else None
            fields[_safe_name(f.name)] = (_python_type(f.type), Field(default, description=f.description, alias=alias))
        built[spec.name] = create_model(spec.name, __base__=IclModel, **fields)
    for model in built.values():
        model.model_rebuild(force=True, _types_namespace=built)
    return built


_SCHEMAS: "weakref.WeakKeyDictionary[type[BaseModel], dict[str, Any]]" = weakref.WeakKeyDictionary()


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema under its declared field names, built once per model
    (it was rebuilt on every LM call). Shared: callers that change a schema copy it."""
    if model not in _SCHEMAS:
        _SCHEMAS[model] = model.model_json_schema(by_alias=True)
    return _SCHEMAS[model]


def dump(obj: BaseModel) -> dict[str, Any]:
    """A model as plain JSON values, under its declared field names."""
    return obj.model_dump(mode="json", by_alias=True)
