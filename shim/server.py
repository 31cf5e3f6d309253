"""The MCP server class: every tool error, the SDK's argument validation included, reads
`[code] message` then `Next: …`, never a raw pydantic dump.

A module of its own, importing only the SDK, so that the shim can answer `initialize` before the
tool modules and the wire models are loaded (see `mcp_server`)."""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, InputRequiredResult


class SshkeepServer(MCPServer[Any]):
    """The MCP server: every tool error reads `[code] message` then `Next: …`."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except MCPError:
            raise
        except Exception as exc:
            from sshkeep.shim.tools_base import error_text  # loaded with the tools, before any call

            raise ToolError(error_text(self, name, exc)) from exc
