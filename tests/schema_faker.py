"""A valid instance for a JSON schema: scripted LMs answer any program with it."""

from __future__ import annotations

from typing import Any, Mapping


def fake(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    """The simplest value `schema` accepts (first enum label, first union member, minimal lists)."""
    root = root or schema
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return fake(target, root, depth + 1)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return fake(options[0], root, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        return {name: fake(sub, root, depth + 1) for name, sub in schema.get("properties", {}).items()
                if name in schema.get("required", ())}
    if kind == "array":
        count = schema.get("minItems", 0) if depth > 3 else max(1, schema.get("minItems", 1))
        return [fake(schema["items"], root, depth + 1) for _ in range(min(count, schema.get("maxItems", count)))]
    if kind == "string":
        text = "x" * max(1, schema.get("minLength", 1))
        return text[: schema.get("maxLength", len(text))]
    if kind == "integer":
        return int(schema.get("minimum", 1))
    if kind == "number":
        return float(schema.get("minimum", 1.0))
    if kind == "boolean":
        return False
    return None
