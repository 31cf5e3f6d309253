"""MCP tools for connections: what can be opened, and the notes kept about each server."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp_types import CallToolResult
from pydantic import Field

from common.models_configs import ConfigList, ServerInfo
from shim.tools_base import READ_ONLY, Tools


def render_configs(listing: ConfigList) -> str:
    lines: list[str] = []
    if listing.file_error:
        lines.append(f"config error: {listing.file_error}")
    for entry in listing.configs:
        if entry.source == "config":
            where = entry.host or ""
            if entry.user:
                where = f"{entry.user}@{where}"
            if entry.port:
                where += f":{entry.port}"
            if entry.proxy_jump:
                where += f" via {entry.proxy_jump}"
            extra = [entry.description] if entry.description else []
            if entry.has_info:
                extra.append("notes: get_server_info")
            lines.append(f"{entry.name}\t{where}" + (f"\t({'; '.join(extra)})" if extra else ""))
        else:
            lines.append(f"{entry.name}\t(~/.ssh/config alias)")
    for err in listing.errors:
        lines.append(f"{err.name}\tBROKEN: {err.message}")
    if not lines:
        lines.append("no connections configured")
    if listing.hint:
        lines.append(f"hint: {listing.hint}")
    return "\n".join(lines)


def render_info(info: ServerInfo) -> str:
    head = f"# {info.name}"
    if info.description:
        head += f" — {info.description}"
    return f"{head}\n(from {info.info_file})\n\n{info.content}"


def register(server: MCPServer[Any], tools: Tools) -> None:
    """Add this group's tools to the server."""

    @server.tool(annotations=READ_ONLY)
    async def list_available_configs() -> Annotated[CallToolResult, ConfigList]:
        """List the connections open_session accepts by name: config.yml entries (with description and
        whether get_server_info has notes) and ~/.ssh/config aliases; broken entries say what to fix."""
        listing = await tools.call(lambda: tools.client.request("GET", "/v1/configs", ConfigList))
        return tools.result(listing, render_configs(listing))

    @server.tool(annotations=READ_ONLY)
    async def get_server_info(
        config_name: Annotated[
            str, Field(min_length=1, max_length=255, description="A name from list_available_configs")
        ],
    ) -> Annotated[CallToolResult, ServerInfo]:
        """Read the notes (markdown info file) kept for a configured server: what it is, how to use it."""
        path = f"/v1/configs/{urllib.parse.quote(config_name, safe='')}/info"
        info = await tools.call(lambda: tools.client.request("GET", path, ServerInfo))
        return tools.result(info, render_info(info))
