"""MCP tools for secrets and the record of commands: answer_secret, list_commands.

A secret never passes through the model: answer_secret names a secret configured in config.yml
and the daemon types it; when none fits, the reply's hint says which command the user runs.
(A person's own answer, `sshkeep answer`, is not an MCP tool on purpose.)
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp_types import CallToolResult

from sshkeep.common.models.sessions import AnswerSecretRequest, CommandList, CommandListQuery, CommandResult
from sshkeep.shim import render_text
from sshkeep.shim.tools_base import Tools, param, tool


def register(server: MCPServer[Any], tools: Tools) -> None:
    """Add this group's tools to the server."""
    client, call, result = tools.client, tools.call, tools.result

    @tool(server, "answer_secret")
    async def answer_secret(
        session_id: Annotated[str, param("answer_secret", "session_id")],
        name: Annotated[str | None, param("answer_secret", "name")] = None,
        sudo: Annotated[bool, param("answer_secret", "sudo")] = False,
        timeout: Annotated[float, param("answer_secret", "timeout")] = 10.0,
    ) -> Annotated[CallToolResult, CommandResult]:
        """Type a secret configured in config.yml (by name; you never see it) into the password, token
        or one-time-code question the running command waits on, then wait for the command like
        send_command. With sudo=true at an idle prompt: validate sudo first (sshkeep runs `sudo -v`
        and answers it), so your next `sudo …` command needs no password. Never put a secret into
        send_command or send_keys yourself."""
        req = AnswerSecretRequest(name=name, sudo=sudo, timeout=timeout)
        res = await call(lambda: client.answer_secret(session_id, req))
        return result(res, render_text.command(res))

    @tool(server, "list_commands")
    async def list_commands(
        session_id: Annotated[str, param("list_commands", "session_id")],
        since: Annotated[str | None, param("list_commands", "since")] = None,
        limit: Annotated[int, param("list_commands", "limit")] = 100,
    ) -> Annotated[CallToolResult, CommandList]:
        """List the session's commands, whoever typed them (source agent, keys, or person: typed by a
        person in tmux), with exit codes; read one's output with get_command."""
        res = await call(lambda: client.list_commands(session_id, CommandListQuery(since=since, limit=limit)))
        return result(res, render_text.command_list(res))
