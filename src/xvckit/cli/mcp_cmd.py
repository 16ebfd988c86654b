"""`xvckit mcp`: the MCP server over stdio, for Claude Code, Cursor, Codex and other MCP clients."""

from __future__ import annotations

from xvckit.cli.options import ConfigOption, DataDirOption


def mcp(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Serve the team's knowledge base, prompts, context packs and your key's usage as MCP tools
    over standard input and output. The key is read from $XVCKIT_API_KEY, else $OPENAI_API_KEY;
    without one, the store's operator is served."""
    from xvckit.knowledge.mcp_server import serve_stdio
    from xvckit.store import open_store

    _, store = open_store(config, data_dir)
    try:
        serve_stdio(store)
    finally:
        store.close()
