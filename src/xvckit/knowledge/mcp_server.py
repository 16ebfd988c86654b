"""The MCP server (`xvckit mcp`, the official `mcp` SDK): the team's knowledge as tools for
Claude Code, Cursor, Codex and any MCP client.

Tools: `search_knowledge_base`, `list_prompts`, `render_prompt`, `usage` (the caller's key's
own), and over stdio `context_pack` (a repository on the caller's machine). Over stdio the
caller is the key in `$XVCKIT_API_KEY` (else `$OPENAI_API_KEY`), or the store's operator when
neither holds a virtual key; over HTTP the gateway checks the key and hands the caller in
(`CALLER_SCOPE_KEY` in the ASGI scope). HTTP has no `context_pack`: it would read the gateway
host's files. A user's mistake comes back as the tool's error text; anything else as
"internal error", its details only in the server's log.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from xvckit import __version__
from xvckit.errors import UserError
from xvckit.knowledge.serving import OPERATOR, Caller, CallerLike, Knowledge
from xvckit.store import Store, keys

log = logging.getLogger("xvckit.mcp")

CALLER_SCOPE_KEY = "xvckit.caller"
KEY_VARIABLES = ("XVCKIT_API_KEY", "OPENAI_API_KEY")
MAX_PACK_TOKENS = 200_000
INSTRUCTIONS = (
    "xvckit serves the team's knowledge: search its knowledge base before solving a problem it may "
    "have met, render its reviewed prompts by name (name@production), and check your key's usage."
)


def build(knowledge: Knowledge, caller_of: Callable[[Context], CallerLike], *, packs: bool) -> MCPServer:
    """The server and its tools; `caller_of` says who calls, `packs` adds `context_pack`."""
    server = MCPServer("xvckit", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING")

    async def call(ctx: Context, method: Callable[..., Any], *args: Any) -> Any:
        caller = caller_of(ctx)
        return await _in_thread(functools.partial(method, caller, *args))

    @server.tool()
    async def search_knowledge_base(query: str, ctx: Context, limit: int = 5) -> list[dict[str, Any]]:
        """The team's documented patterns and solutions most relevant to `query`, best first."""
        return await call(ctx, knowledge.search, query, limit)

    @server.tool()
    async def list_prompts(ctx: Context) -> list[dict[str, Any]]:
        """The team's prompts: names, versions, labels, variables, model."""
        return await call(ctx, knowledge.prompts)

    @server.tool()
    async def render_prompt(
        prompt: str, ctx: Context, variables: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Render a team prompt: `prompt` is name, name@label or name@version (name alone: production);
        every variable it takes must be given. Returns the text, and its model and parameters."""
        return await call(ctx, knowledge.render, prompt, variables or {})

    @server.tool()
    async def usage(ctx: Context, since: str = "30d") -> dict[str, Any]:
        """Your key's requests, tokens, cost (USD) and errors since `since` (7d, 24h, a date), by model."""
        return await call(ctx, knowledge.usage, since)

    if packs:

        @server.tool()
        async def context_pack(task: str, ctx: Context, repo: str = ".", budget: int = 8000) -> str:
            """The code of a local repository a task needs, within `budget` tokens: guidance files and
            the relevant knowledge-base entries, an outline, then the most relevant code."""
            caller = caller_of(ctx)
            return await _in_thread(functools.partial(_pack, knowledge, caller, task, repo, budget))

    return server


async def _in_thread(work: Callable[[], Any]) -> Any:
    try:
        return await anyio.to_thread.run_sync(work)
    except UserError as exc:
        raise ToolError(str(exc)) from None
    except Exception:
        log.exception("MCP tool failed")
        raise ToolError("internal error") from None


def _pack(knowledge: Knowledge, caller: CallerLike, task: str, repo: str, budget: int) -> str:
    from xvckit.config.schema import ContextSettings
    from xvckit.context.pack import Note, build_pack

    if not 1 <= budget <= MAX_PACK_TOKENS:
        raise UserError(f"budget: 1 to {MAX_PACK_TOKENS:,} tokens")
    entries = knowledge.search(caller, task, 5) if task.strip() else []
    notes = [Note(f"kb/{e['slug']}", _entry_text(e), e.get("score", 0.0)) for e in entries]
    return build_pack(task, Path(repo), ContextSettings(), budget=budget, notes=notes).text


def _entry_text(entry: dict[str, Any]) -> str:
    return f"# {entry['pattern']}\n\n## Problem\n{entry['problem']}\n\n## Solution\n{entry['solution']}\n"


def stdio_caller(store: Store, environ: dict[str, str] | None = None) -> CallerLike:
    """Who `xvckit mcp` over stdio serves: the virtual key in the environment (refused when it
    is unknown, revoked or expired), else the store's operator."""
    environ = os.environ if environ is None else environ
    raw = next(
        (environ[name] for name in KEY_VARIABLES if environ.get(name, "").startswith(keys.KEY_PREFIX)), None
    )
    if raw is None:
        return OPERATOR
    found = keys.by_hash(store, keys.hash_key(raw))
    if (
        found is None
        or found[0].revoked_at is not None
        or (found[0].expires_at or float("inf")) <= time.time()
    ):
        raise UserError(f"{'/'.join(KEY_VARIABLES)}: the key is unknown, revoked or expired in this store")
    key, _team = found
    return Caller(key.id, key.team_id, key.role)


def serve_stdio(store: Store) -> None:
    """Serve over standard input and output until the client closes them."""
    caller = stdio_caller(store)
    build(Knowledge(store), lambda _ctx: caller, packs=True).run("stdio")


def http_app(store: Store):
    """The streamable HTTP app the gateway mounts (stateless, JSON answers); the gateway checks
    the key and puts the caller in the scope. Returns (app, session_manager): the manager's
    `run()` must be entered while the app serves."""
    server = build(Knowledge(store), _scope_caller, packs=False)
    # No Host/Origin allow-list (the SDK's guard against DNS rebinding, which would let only
    # loopback names through): the gateway answers 401 before this app unless the request
    # carries a key, which a page a browser was tricked into loading does not have.
    # The SDK logs every stateless request at INFO ("Terminating session"): the gateway's access
    # log has one line per request already.
    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    return app, server.session_manager


def _scope_caller(ctx: Context) -> CallerLike:
    request = ctx.request_context.request
    caller = getattr(request, "scope", {}).get(CALLER_SCOPE_KEY)
    if caller is None:  # the gateway always sets it; never serve without
        raise ToolError("no caller: the MCP endpoint is served by the gateway behind a key")
    return caller
