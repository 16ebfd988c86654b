"""What a caller may read of the team's knowledge, one rule for the MCP tools and the gateway's
prompt routes.

A caller is anything with `key_id`, `team_id` and `role` (the gateway's Principal, or
`Caller` for `xvckit mcp` over stdio); `key_id` None is the master key or, over stdio, the
operator of the store. A prompt is served to the keys of its owning team and to admins (a
prompt without a team to admins only); a knowledge-base entry to the keys of its team, an
entry of no team to every key; usage is the caller's own key's. A prompt a caller may not
use answers exactly as one that does not exist.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from xvckit.errors import UserError
from xvckit.knowledge import kb_store, prompts_store
from xvckit.knowledge.prompts import LATEST, check_name, parse_ref, render
from xvckit.store import Store
from xvckit.store.ledger import usage_report
from xvckit.timespec import parse_moment

MAX_QUERY_CHARS = 1000
MAX_VARIABLES_BYTES = 256 * 1024


class CallerLike(Protocol):
    key_id: str | None
    team_id: str | None
    role: str


@dataclass(frozen=True)
class Caller:
    key_id: str | None
    team_id: str | None
    role: str


OPERATOR = Caller(None, None, "admin")  # stdio without a key: whoever can open the store


class Knowledge:
    """The team knowledge a caller may read, from one store (synchronous: call from a thread)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def search(self, caller: CallerLike, query: str, limit: int = 5) -> list[dict[str, Any]]:
        if len(query) > MAX_QUERY_CHARS:
            raise UserError(f"query: at most {MAX_QUERY_CHARS} characters")
        if not 1 <= limit <= kb_store.MAX_RESULTS:
            raise UserError(f"limit: 1 to {kb_store.MAX_RESULTS}")
        scope = {} if caller.role == "admin" else {"team_id": caller.team_id, "every_team": False}
        return [entry.public() for entry in kb_store.search(self.store, query, limit, **scope)]

    def prompts(self, caller: CallerLike) -> list[dict[str, Any]]:
        """The prompts the caller may use, each with its versions and labels."""
        team = None if caller.role == "admin" else caller.team_id
        if team is None and caller.role != "admin":
            return []
        return [p.summary() for p in prompts_store.list_prompts(self.store, team)]

    def show(self, caller: CallerLike, name: str) -> dict[str, Any]:
        """A prompt the caller may use, whole: its labels and every version."""
        self._owned(caller, check_name(name), LATEST)  # another team's: not found, as a missing one
        prompt = prompts_store.get(self.store, name)
        return {
            "name": prompt.name,
            "team": prompt.team,
            "tags": list(prompt.tags),
            "labels": prompt.all_labels(),
            "versions": [version.public() for version in prompt.versions],
        }

    def prompt(self, caller: CallerLike, ref: str) -> dict[str, Any]:
        """One version of a prompt the caller may use, by `name@label|version`."""
        name, selector = parse_ref(ref)
        owned = self._owned(caller, name, selector)
        return {"name": name, "team_id": owned.team_id, **owned.version.public()}

    def render(self, caller: CallerLike, ref: str, variables: dict[str, Any]) -> dict[str, Any]:
        """A prompt rendered: the text, and the model and parameters of its version."""
        if not isinstance(variables, dict):
            raise UserError("variables: a JSON object of names and values")
        try:
            size = len(orjson.dumps(variables))
        except TypeError as exc:  # an integer beyond 64 bits, from a client's JSON
            raise UserError(f"variables: {exc}") from None
        if size > MAX_VARIABLES_BYTES:
            raise UserError(f"variables: at most {MAX_VARIABLES_BYTES // 1024} KiB as JSON")
        name, selector = parse_ref(ref)
        owned = self._owned(caller, name, selector)
        version = owned.version
        return {
            "prompt": f"{name}@{version.version}",
            "text": render(name, version, variables),
            "model": version.model,
            "parameters": version.parameters,
        }

    def usage(self, caller: CallerLike, since: str = "30d") -> dict[str, Any]:
        """The caller's key's requests, tokens, cost and errors since `since`, and by model."""
        if caller.key_id is None:
            raise UserError("usage is a key's own: call with a virtual key (xvc-...), not the master key")
        try:
            start = parse_moment(since[:64])
        except ValueError as exc:
            raise UserError(f"since: {exc}") from None
        total = usage_report(self.store, None, start, key_id=caller.key_id)
        by_model = usage_report(self.store, "model", start, key_id=caller.key_id)
        empty = {"requests": 0, "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0, "errors": 0}
        return {
            "key_id": caller.key_id,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start)),
            "total": total[0] if total else empty,
            "by_model": by_model,
        }

    def _owned(self, caller: CallerLike, name: str, selector: str | None) -> prompts_store.Owned:
        def may_use(team_id: str | None) -> bool:
            return caller.role == "admin" or (team_id is not None and team_id == caller.team_id)

        return prompts_store.resolve(self.store, name, selector, may_use)
