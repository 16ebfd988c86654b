"""Which tool the simulated model calls, if any (its arguments come from `sim.schemas`)."""

from __future__ import annotations


def pick_tool(names: list[str], mode: str, forced: str | None, after_tool_result: bool) -> int | None:
    """Index of the tool to call, or None for a text reply.

    `mode` is "none", "auto" or "required" (OpenAI's names; Anthropic's "any" maps to
    "required"); `forced` names one tool. In "auto" the model answers in text once a tool
    result came back (the last message that is not a system message carries one), so an
    agent loop against the simulator ends.
    """
    if not names or mode == "none":
        return None
    if forced is not None:
        return names.index(forced) if forced in names else None
    if mode == "auto" and after_tool_result:
        return None
    return 0
