"""Tool calls the simulated model makes: which tool, and arguments that satisfy its schema."""

from __future__ import annotations

from typing import Any

_BY_TYPE: dict[str, Any] = {
    "string": "sim",
    "integer": 1,
    "number": 1.5,
    "boolean": True,
    "null": None,
}


def pick_tool(names: list[str], mode: str, forced: str | None, after_tool_result: bool) -> int | None:
    """Index of the tool to call, or None for a text reply.

    `mode` is "none", "auto" or "required" (OpenAI's names; Anthropic's "any" maps to
    "required"); `forced` names one tool. In "auto" the model answers in text once a tool
    result came back, so an agent loop against the simulator ends.
    """
    if not names or mode == "none":
        return None
    if forced is not None:
        return names.index(forced) if forced in names else None
    if mode == "auto" and after_tool_result:
        return None
    return 0


def arguments_for(schema: Any) -> Any:
    """A value valid for a JSON schema's usual subset: const, default, enum, then the type;
    objects get their required properties only."""
    if not isinstance(schema, dict):  # no schema, or `true`: anything goes
        return "sim"
    for key in ("const", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return arguments_for(schema[key][0])
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {name: arguments_for(properties.get(name)) for name in schema.get("required") or ()}
    if kind == "array":
        minimum = schema.get("minItems") or 0
        return [arguments_for(schema.get("items")) for _ in range(minimum)]
    return _BY_TYPE.get(kind)
