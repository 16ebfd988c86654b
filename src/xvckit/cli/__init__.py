"""The `xvckit` command: parse, call a room, render. No logic of its own."""

from xvckit.cli.app import app, main

__all__ = ["app", "main"]
