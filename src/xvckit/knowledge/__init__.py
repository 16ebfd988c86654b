"""Team knowledge: the prompt library, the knowledge base, the MCP server and project templates.

The gateway never imports this package: it serves prompts and MCP through small interfaces
handed to it by `xvckit.stack`."""
