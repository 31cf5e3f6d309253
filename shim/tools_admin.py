"""MCP tools for admin: cleaning up dead sessions."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp_types import CallToolResult

from sshkeep.common.models.admin import CleanupRequest, CleanupResult
from sshkeep.shim.tools_base import Tools, param, tool


def render_cleanup(res: CleanupResult) -> str:
    if res.removed:
        text = f"closed {len(res.removed)} disconnected session(s): {', '.join(res.removed)}"
    else:
        text = "no disconnected session to close"
    if res.kept:
        kept = ", ".join(res.kept)
        text += f"\nkept {len(res.kept)} disconnected for less than {res.max_age_seconds:g}s: {kept}"
    return text


def register(server: MCPServer[Any], tools: Tools) -> None:
    """Add this group's tools to the server."""

    @tool(server, "cleanup_dead_sessions")
    async def cleanup_dead_sessions(
        max_age_seconds: Annotated[float, param("cleanup_dead_sessions", "max_age_seconds")] = 0.0,
    ) -> Annotated[CallToolResult, CleanupResult]:
        """Close sessions whose ssh exited at least max_age_seconds ago (0: all)."""
        body = CleanupRequest(max_age_seconds=max_age_seconds)
        res = await tools.call(lambda: tools.client.cleanup_dead_sessions(body))
        return tools.result(res, render_cleanup(res))
