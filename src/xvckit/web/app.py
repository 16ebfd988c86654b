"""The dashboard at /ui: one page and its files (no key needed: they hold no data), and the JSON
each panel reads under /ui/api (the gateway checks the key first and puts the caller in the
scope; the panels check its role here).

Who sees what: the master key and admin keys every team, or one team they pick; a team-admin
key only its own team (a `team` naming another one is a 403; the spend by key lists only its
team's keys); a member key nothing (403). Every answer of /ui/api is `no-store`. The page's
JavaScript is the package's own and plotly's, from the `plotly` package (no CDN): its content
security policy allows no other origin and no inline script.
"""

from __future__ import annotations

import asyncio
import gzip
import mimetypes
import time
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import orjson

from xvckit.asgi import Receive, Scope, Send, header, respond
from xvckit.errors import NotFound
from xvckit.store import Store, keys
from xvckit.timespec import parse_duration
from xvckit.web import panels

PREFIX = "/ui"
CALLER = "xvckit.web.caller"  # where the gateway puts the caller (a keyring Principal)
STATIC = Path(str(files("xvckit.web") / "static"))
MAX_QUERY = 512  # bytes of query string: the panels take two short parameters
MIN_RANGE_S, MAX_RANGE_S = 3600, 366 * 86400
ROLES = ("admin", "team-admin")
_SECURITY = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_PAGE_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    b"connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_PARAMS = {
    "me": (),
    "overview": ("range", "team"),
    "api": ("range", "team"),
    "delivery": (),
    "infrastructure": ("range",),
}


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Dashboard:
    """The /ui ASGI app. `kpis`: the repository KPIs kept fresh (metrics/live.py), or None."""

    def __init__(self, store: Store, kpis: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.kpis = kpis
        self.clock = clock
        self._assets = {path.name: path for path in STATIC.iterdir() if path.is_file()}
        self._plotly: tuple[bytes, bytes] | None = None  # plotly.min.js, plain and gzipped

    @staticmethod
    def public(path: str) -> bool:
        """The page and its files: answered without a key."""
        return path in (PREFIX, PREFIX + "/") or path.startswith(PREFIX + "/static/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["method"] not in ("GET", "HEAD"):
            await _error(send, 405, f"{scope['method']} is not allowed on {path}; use GET")
        elif path in (PREFIX, PREFIX + "/"):
            await self._file(scope, send, "index.html")
        elif path.startswith(PREFIX + "/static/"):
            await self._file(scope, send, path.removeprefix(PREFIX + "/static/"))
        elif path.startswith(PREFIX + "/api/") and path.count("/") == 3:
            try:
                body = await self._panel(scope, path.rsplit("/", 1)[1])
            except Refused as exc:
                await _error(send, exc.status, str(exc))
                return
            await respond(
                send, 200, orjson.dumps(body), headers=[(b"cache-control", b"no-store"), *_SECURITY]
            )
        else:
            await _error(send, 404, f"no such page: {path}")

    async def _file(self, scope: Scope, send: Send, name: str) -> None:
        if name == "plotly.min.js":
            plain, packed = await self._plotly_js()
            zipped = b"gzip" in (header(scope, b"accept-encoding") or b"")
            extra = [(b"content-encoding", b"gzip")] if zipped else []
            extra += [(b"vary", b"accept-encoding"), (b"cache-control", b"public, max-age=86400")]
            await respond(send, 200, packed if zipped else plain, b"text/javascript", [*extra, *_SECURITY])
            return
        path = self._assets.get(name)
        if path is None:
            await _error(send, 404, f"no such file: {name[:100]}")
            return
        kind = (mimetypes.guess_type(path.name)[0] or "application/octet-stream").encode()
        headers = [(b"cache-control", b"no-cache"), *_SECURITY]
        if name == "index.html":
            headers.append((b"content-security-policy", _PAGE_POLICY))
        await respond(send, 200, await asyncio.to_thread(path.read_bytes), kind, headers)

    async def _plotly_js(self) -> tuple[bytes, bytes]:
        """plotly.min.js from the plotly package, and gzipped once (4.8 MB, ~1.4 MB zipped)."""
        if self._plotly is None:

            def load() -> tuple[bytes, bytes]:
                plain = (files("plotly") / "package_data" / "plotly.min.js").read_bytes()
                return plain, gzip.compress(plain, 6)

            self._plotly = await asyncio.to_thread(load)
        return self._plotly

    async def _panel(self, scope: Scope, name: str) -> dict[str, Any]:
        if name not in _PARAMS:
            raise Refused(404, f"no such panel: {name[:50]}")
        who = scope.get(CALLER)
        if who is None or who.role not in ROLES:
            raise Refused(403, "the dashboard needs an admin or team-admin key")
        query = _query(scope, _PARAMS[name])
        team = await asyncio.to_thread(self._team, who, query.get("team"))
        window = panels.Window.last(_range(query.get("range", "7d")), self.clock())
        store = self.store
        if name == "me":
            return await asyncio.to_thread(self._me, who)
        if name == "overview":
            kpis = self.kpis.document["kpis"] if self.kpis and self.kpis.document else None
            return await asyncio.to_thread(panels.overview, store, window, team, kpis)
        if name == "api":
            return await asyncio.to_thread(panels.api, store, window, team, who.team_id)
        if name == "delivery":
            return panels.delivery(
                self.kpis.document if self.kpis else None,
                self.kpis.problem if self.kpis else "no repository configured (metrics.repo)",
            )
        return await asyncio.to_thread(panels.infrastructure, store, window)

    def _team(self, who: Any, ref: str | None) -> str | None:
        """The team whose numbers are shown: a team-admin's own, else the one asked for, else all."""
        if who.role == "team-admin":
            if ref is not None and ref not in (who.team_id, who.team.name):
                raise Refused(403, "a team-admin key sees its own team only")
            return who.team_id
        if ref is None:
            return None
        try:
            return keys.get_team(self.store, ref).id
        except NotFound:
            raise Refused(404, f"no team {ref[:100]!r}") from None

    def _me(self, who: Any) -> dict[str, Any]:
        admin = who.role == "admin"
        teams = keys.list_teams(self.store) if admin else [who.team]
        return {
            "role": who.role,
            "key": who.key.name if who.key else "master key",
            "team": {"id": who.team.id, "name": who.team.name} if who.team else None,
            "teams": [{"id": t.id, "name": t.name} for t in teams],
            "repository": bool(self.kpis and self.kpis.settings.repo),
        }


def _query(scope: Scope, allowed: tuple[str, ...]) -> dict[str, str]:
    raw = scope.get("query_string", b"")
    if len(raw) > MAX_QUERY:
        raise Refused(400, f"the query string is over {MAX_QUERY} bytes")
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
        if name not in allowed:
            raise Refused(
                400, f"unknown parameter {name[:50]!r}; this panel takes: {', '.join(allowed) or 'none'}"
            )
        if name in query:
            raise Refused(400, f"{name} given twice")
        query[name] = value
    return query


def _range(text: str) -> float:
    seconds = parse_duration(text)
    if seconds is None or not MIN_RANGE_S <= seconds <= MAX_RANGE_S:
        raise Refused(400, "range: a duration from 1h to 366d, such as 24h, 7d or 30d")
    return seconds


async def _error(send: Send, status: int, message: str) -> None:
    body = orjson.dumps({"error": {"type": _TYPES.get(status, "error"), "message": message}})
    await respond(send, status, body, headers=[(b"cache-control", b"no-store"), *_SECURITY])


_TYPES = {400: "invalid_request", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
