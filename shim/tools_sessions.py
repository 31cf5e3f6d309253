"""MCP tools for sessions: open, list, reconnect, close."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp_types import CallToolResult

from sshkeep.common.models.sessions import (
    CloseResult,
    OpenSessionRequest,
    ReconnectRequest,
    SessionInfo,
    SessionList,
)
from sshkeep.shim import render_text
from sshkeep.shim.tools_base import Tools, param, tool


def register(server: MCPServer[Any], tools: Tools) -> None:
    """Add this group's tools to the server."""
    client, call, result = tools.client, tools.call, tools.result

    @tool(server, "open_session")
    async def open_session(
        host: Annotated[str, param("open_session", "host")],
        username: Annotated[str | None, param("open_session", "username")] = None,
        port: Annotated[int | None, param("open_session", "port")] = None,
    ) -> Annotated[CallToolResult, SessionInfo]:
        """Open an SSH terminal. Needed only for another user or port: send_command(host) opens one."""
        info = await call(
            lambda: client.open_session(OpenSessionRequest(host=host, username=username, port=port))
        )
        return result(info, render_text.session(info))

    @tool(server, "list_sessions")
    async def list_sessions() -> Annotated[CallToolResult, SessionList]:
        """Sessions with state and question."""
        sessions = await call(client.list_sessions)
        return result(sessions, render_text.sessions(sessions))

    @tool(server, "reconnect_session")
    async def reconnect_session(
        session_id: Annotated[str, param("reconnect_session", "session_id")],
        timeout: Annotated[float, param("reconnect_session", "timeout")] = 30.0,
    ) -> Annotated[CallToolResult, SessionInfo]:
        """New ssh in a disconnected session (same id and directory; shell state is new)."""
        info = await call(lambda: client.reconnect_session(session_id, ReconnectRequest(timeout=timeout)))
        return result(info, render_text.session(info))

    @tool(server, "close_session")
    async def close_session(
        session_id: Annotated[str, param("close_session", "session_id")],
    ) -> Annotated[CallToolResult, CloseResult]:
        """End a session: its ssh, tmux session and log."""
        res = await call(lambda: client.close_session(session_id))
        return result(res, f"closed {res.session_id}")
