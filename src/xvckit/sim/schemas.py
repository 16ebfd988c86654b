"""Values for a JSON schema, for the simulated model's tool calls and structured outputs, and
OpenAI's strict-mode rules for a schema.

The generator covers what SDKs and hand-written tools send (Pydantic, zod-to-json-schema):
`object` (properties, required), string/number/integer/boolean/null, `enum` and `const`,
arrays (items, prefixItems, minItems), `anyOf`/`oneOf` (the first branch that is not null),
`allOf` (merged), `$ref` into the schema (`$defs`, `definitions`) and type lists (nullable
types). Optional properties are left out; strings meet minLength/maxLength and the common
formats, numbers their bounds, so the value validates. Patterns are not followed.

Strict mode (https://platform.openai.com/docs/guides/structured-outputs, "Supported schemas"):
every object must set `additionalProperties: false` and list every property in `required`,
and the root must be an object; the API refuses the request otherwise, with messages such as
"In context=('properties', 'address'), 'additionalProperties' is required to be supplied and
to be false."
"""

from __future__ import annotations

import math
from typing import Any

# What `response_format: json_object` gets: some JSON object.
JSON_OBJECT = {"type": "object", "properties": {"reply": {"type": "string"}}, "required": ["reply"]}
NESTING = 8  # past this depth a nullable branch is taken, so a recursive schema ends
MAX_DEPTH = 64  # and past this one, whatever the schema, the value is null
_BY_TYPE: dict[str, Any] = {"string": "sim", "integer": 1, "number": 1.5, "boolean": True, "null": None}
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "email": "sim@example.com",
    "uri": "https://example.com/sim",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
}


def instance(schema: Any) -> Any:
    """A value valid for `schema` (its `$ref`s resolved within it)."""
    return _value(schema, schema, 0)


def _value(schema: Any, root: Any, depth: int) -> Any:
    if depth > MAX_DEPTH:
        return None
    if not isinstance(schema, dict):  # no schema, or `true`: anything goes
        return "sim"
    if "$ref" in schema:
        return _value(_resolve(root, schema["$ref"]), root, depth + 1)
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return _value(_branch(schema[key], root, depth), root, depth + 1)
    if schema.get("allOf"):
        return _value(_merged(schema, root), root, depth + 1)
    kind = schema.get("type") or ("array" if "items" in schema else "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null") if depth < NESTING else "null"
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: _value(properties.get(name), root, depth + 1) for name in schema.get("required") or ()}
    if kind == "array":
        prefix = [_value(item, root, depth + 1) for item in schema.get("prefixItems") or ()]
        rest = max(0, (schema.get("minItems") or 0) - len(prefix))
        return prefix + [_value(schema.get("items"), root, depth + 1) for _ in range(rest)]
    if kind == "string":
        return _string(schema)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    return _BY_TYPE.get(kind)


def _resolve(root: Any, ref: Any) -> Any:
    """The part of `root` a local `$ref` ("#", "#/$defs/Name") points at; `true` if none."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return True
    node = root
    for part in filter(None, ref[1:].split("/")):
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            return True
    return node


def _is_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _branch(branches: list[Any], root: Any, depth: int) -> Any:
    """The first branch that is not null; deep in a recursive schema, the null one."""
    resolved = [_resolve(root, b["$ref"]) if isinstance(b, dict) and "$ref" in b else b for b in branches]
    null = next((b for b in resolved if _is_null(b)), None)
    if depth >= NESTING and null is not None:
        return null
    return next((b for b in resolved if not _is_null(b)), resolved[0])


def _merged(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    """`allOf` as one schema: its members' keys together, properties and required joined."""
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for member in schema["allOf"]:
        if isinstance(member, dict) and "$ref" in member:
            member = _resolve(root, member["$ref"])
        if not isinstance(member, dict):
            continue
        for key, value in member.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _string(schema: dict[str, Any]) -> str:
    text = _FORMATS.get(schema.get("format"), "sim")
    shortest, longest = schema.get("minLength") or 0, schema.get("maxLength")
    if len(text) < shortest:
        text += "s" * (shortest - len(text))
    return text if longest is None else text[:longest]


def _number(schema: dict[str, Any], integer: bool) -> float:
    value: float = _BY_TYPE["integer" if integer else "number"]
    step = 1 if integer else 0.5
    low, high = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if isinstance(low, (int, float)) and value < low:
        value = low
    if isinstance(above, (int, float)) and not isinstance(above, bool) and value <= above:
        value = above + step
    if isinstance(high, (int, float)) and value > high:
        value = high
    if isinstance(below, (int, float)) and not isinstance(below, bool) and value >= below:
        value = below - step
    return math.ceil(value) if integer else value


def strict_problem(schema: Any) -> str | None:
    """Why OpenAI's strict mode refuses `schema`, in its words; None if it does not."""
    if not isinstance(schema, dict) or schema.get("type") != "object":
        kind = schema.get("type") if isinstance(schema, dict) else None
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{kind}\"'."
    return _object_problem(schema, ())


def _object_problem(schema: Any, context: tuple[str, ...]) -> str | None:
    if not isinstance(schema, dict):
        return None
    properties = schema.get("properties")
    if schema.get("type") == "object" or isinstance(properties, dict):
        where = f"In context={context!r}, "
        if schema.get("additionalProperties") is not False:
            return where + "'additionalProperties' is required to be supplied and to be false."
        required = schema.get("required")
        missing = [
            name for name in properties or {} if not isinstance(required, list) or name not in required
        ]
        if missing:
            return (
                where + "'required' is required to be supplied and to be an array including every key in "
                f"properties. Missing '{missing[0]}'."
            )
    for key, child in _children(schema):
        problem = _object_problem(child, (*context, *key))
        if problem:
            return problem
    return None


def _children(schema: dict[str, Any]) -> list[tuple[tuple[str, ...], Any]]:
    """The schemas inside `schema`, each with the path to it."""
    found: list[tuple[tuple[str, ...], Any]] = []
    for key in ("properties", "$defs", "definitions"):
        if isinstance(schema.get(key), dict):
            found += [((key, name), child) for name, child in schema[key].items()]
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(schema.get(key), list):
            found += [((key, str(i)), child) for i, child in enumerate(schema[key])]
    if isinstance(schema.get("items"), dict):
        found.append((("items",), schema["items"]))
    return found
