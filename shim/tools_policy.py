"""MCP tool of the guard rails: the dry run. Approving is a person's act, never an agent's tool."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp_types import CallToolResult

from sshkeep.common.models.policy import CheckCommandRequest, CheckResult
from sshkeep.shim.tools_base import Tools, param, tool


def render(res: CheckResult) -> str:
    lines = [f"{res.decision} ({res.policy} on {res.host}): {res.reason}"]
    if res.rule:
        lines.append(f"rule: {res.rule}")
    for p in res.parts[:20]:
        lines.append(f"  {p.command_class:<11} {p.command}")
    if res.hint:
        lines.append(f"hint: {res.hint}")
    return "\n".join(lines)


def register(server: MCPServer[Any], tools: Tools) -> None:
    client = tools.client

    @tool(server, "check_command")
    async def check_command(
        session_id: Annotated[str, param("check_command", "session_id")],
        command: Annotated[str, param("check_command", "command")],
    ) -> Annotated[CallToolResult, CheckResult]:
        """Dry run: how the session's policy classifies a command (read, write, destructive ...) and
        whether send_command would run it, ask a person first, or refuse. Runs nothing."""
        res = await tools.call(lambda: client.check_command(session_id, CheckCommandRequest(command=command)))
        return tools.result(res, render(res))
