"""MCP tools for configs (filled in by its mechanism)."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from shim.tools_base import Tools


def register(server: MCPServer[Any], tools: Tools) -> None:
    """Add this group's tools to the server."""
