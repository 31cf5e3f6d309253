"""MCP tools for connections: what can be opened, and the notes kept about each server."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp_types import CallToolResult

from sshkeep.common.models.configs import ConfigList, ServerInfo
from sshkeep.shim.tools_base import Tools, param, tool


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

    @tool(server, "list_available_configs")
    async def list_available_configs() -> Annotated[CallToolResult, ConfigList]:
        """Host names you can use, with descriptions."""
        listing = await tools.call(tools.client.list_available_configs)
        return tools.result(listing, render_configs(listing))

    @tool(server, "get_server_info")
    async def get_server_info(
        config_name: Annotated[str, param("get_server_info", "config_name")],
    ) -> Annotated[CallToolResult, ServerInfo]:
        """The notes kept about a configured server (what it is, how to use it)."""
        info = await tools.call(lambda: tools.client.get_server_info(config_name))
        return tools.result(info, render_info(info))
