"""The stdio MCP server: every tool is a thin adapter over one daemon API call.

Parameters reuse the request models' field definitions, results are the reply models
(structured output) plus a short text rendering, and any `SshkeepError` becomes a tool error
whose text names the problem and the next step.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult

from common.client import ApiClient
from common.models import (
    CloseResult,
    CommandResult,
    OpenSessionRequest,
    ReconnectRequest,
    SendCommandRequest,
    SendKeysRequest,
    SendKeysResult,
    SessionInfo,
    SessionList,
    Snapshot,
    WaitForRequest,
    WaitForResult,
)
from common.paths import Paths
from shim import render_text, tools_admin, tools_configs, tools_files
from shim.tools_base import ACTS, OPENS, READ_ONLY, Tools, field

INSTRUCTIONS = """\
sshkeep keeps persistent, interactive SSH terminals for you. Sessions survive client and daemon
restarts, and a person can watch them in tmux.
- open_session(host) takes a name from list_available_configs, else an ssh destination.
- send_command runs one shell command and returns when it ends, with exit_code and only that
  command's output. Non-zero exit codes are results, not errors.
- status "running": follow with get_command(wait=...), or interrupt_command.
- status "waiting_input": the terminal asks something (password, [y/N], unclosed quote, full-screen
  program). Answer with send_keys, then get_command(wait=...); or interrupt_command.
- Long output is paged: get_command(offset=next_offset).
- get_snapshot shows the screen; send_keys types keys (tmux names like Enter, C-c, Up, else text).
"""

CHUNK_SECONDS = 5.0


def build_server(paths: Paths, client: ApiClient) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("sshkeep", instructions=INSTRUCTIONS)
    tools = Tools(client, paths)
    call = tools.call
    result = tools.result

    @server.tool(annotations=OPENS)
    async def open_session(
        host: Annotated[str, field(OpenSessionRequest, "host")],
        username: Annotated[str | None, field(OpenSessionRequest, "username")] = None,
        port: Annotated[int | None, field(OpenSessionRequest, "port")] = None,
    ) -> Annotated[CallToolResult, SessionInfo]:
        """Open a persistent SSH terminal; returns when the remote shell is ready (or asks something)."""
        info = await call(
            lambda: client.open_session(OpenSessionRequest(host=host, username=username, port=port))
        )
        return result(info, render_text.session(info))

    @server.tool(annotations=READ_ONLY)
    async def list_sessions() -> Annotated[CallToolResult, SessionList]:
        """List every session with its state (ready, busy, waiting_input, disconnected)."""
        sessions = await call(client.list_sessions)
        return result(sessions, render_text.sessions(sessions))

    @server.tool(annotations=ACTS)
    async def send_command(
        session_id: str,
        command: Annotated[str, field(SendCommandRequest, "command")],
        ctx: Context,
        timeout: Annotated[float, field(SendCommandRequest, "timeout")] = 10.0,
    ) -> Annotated[CallToolResult, CommandResult]:
        """Run a shell command in the session and wait (up to `timeout` s) for it to end."""
        start = time.monotonic()
        first = min(timeout, CHUNK_SECONDS)
        res = await call(
            lambda: client.send_command(session_id, SendCommandRequest(command=command, timeout=first))
        )
        res = await _follow(client, call, ctx, res, start, timeout)
        return result(res, render_text.command(res))

    @server.tool(annotations=READ_ONLY)
    async def get_command(
        session_id: str,
        command_id: str,
        ctx: Context,
        offset: int = 0,
        limit: int | None = None,
        wait: float = 0.0,
    ) -> Annotated[CallToolResult, CommandResult]:
        """Status and output of a command; `wait` s for it to end; page long output with offset/limit."""
        if not 0 <= wait <= 50:
            raise ToolError("[bad_request] wait must be between 0 and 50 seconds")
        start = time.monotonic()
        res = await call(
            lambda: client.get_command(
                session_id, command_id, offset=offset, limit=limit, wait=min(wait, CHUNK_SECONDS)
            )
        )
        if wait > CHUNK_SECONDS:
            res = await _follow(client, call, ctx, res, start, wait, offset=offset, limit=limit)
        return result(res, render_text.command(res))

    @server.tool(annotations=ACTS)
    async def send_keys(
        session_id: str, keys: Annotated[list[str], field(SendKeysRequest, "keys")]
    ) -> Annotated[CallToolResult, SendKeysResult]:
        """Type keys into the terminal: tmux key names (Enter, C-c, Up, Tab) or literal text."""
        res = await call(lambda: client.send_keys(session_id, SendKeysRequest(keys=keys)))
        return result(res, f"sent {res.sent} key item(s) to {res.session_id}. {res.hint or ''}".strip())

    @server.tool(annotations=ACTS)
    async def interrupt_command(session_id: str) -> Annotated[CallToolResult, CommandResult]:
        """Send Ctrl-C to the running command and wait for the prompt."""
        res = await call(lambda: client.interrupt(session_id))
        return result(res, render_text.command(res))

    @server.tool(annotations=READ_ONLY)
    async def wait_for(
        session_id: str,
        pattern: Annotated[str, field(WaitForRequest, "pattern")],
        ctx: Context,
        timeout: Annotated[float, field(WaitForRequest, "timeout")] = 10.0,
    ) -> Annotated[CallToolResult, WaitForResult]:
        """Wait until new terminal output matches a regex (or the running command ends)."""
        start = time.monotonic()
        since: int | None = None
        while True:
            remaining = max(0.0, timeout - (time.monotonic() - start))
            req = WaitForRequest(pattern=pattern, timeout=min(CHUNK_SECONDS, remaining), since=since)

            def once(r: WaitForRequest = req) -> Awaitable[WaitForResult]:
                return client.wait_for(session_id, r)

            res = await call(once)
            # Go on in chunks (reporting progress) while only the chunk's time ran out.
            if res.matched or res.command_status is not None or remaining <= CHUNK_SECONDS:
                break
            since = res.searched_to
            elapsed = time.monotonic() - start
            await ctx.report_progress(elapsed, timeout, f"waiting for /{pattern}/ for {elapsed:.0f}s")
        text = f"matched: {res.line}\n{res.context}" if res.matched else f"no match. {res.hint or ''}"
        return result(res, text)

    @server.tool(annotations=OPENS)
    async def reconnect_session(
        session_id: str, timeout: Annotated[float, field(ReconnectRequest, "timeout")] = 30.0
    ) -> Annotated[CallToolResult, SessionInfo]:
        """Start a fresh ssh in a disconnected session: same id, same log, same tmux window."""
        info = await call(lambda: client.reconnect(session_id, ReconnectRequest(timeout=timeout)))
        return result(info, render_text.session(info))

    @server.tool(annotations=READ_ONLY)
    async def get_snapshot(session_id: str, lines: int | None = None) -> Annotated[CallToolResult, Snapshot]:
        """The terminal screen as a person sees it (plus `lines` of scrollback)."""
        res = await call(lambda: client.snapshot(session_id, lines))
        return result(res, res.screen)

    @server.tool(annotations=ACTS)
    async def close_session(session_id: str) -> Annotated[CallToolResult, CloseResult]:
        """End the session: its ssh, tmux session and log."""
        res = await call(lambda: client.close_session(session_id))
        return result(res, f"closed {res.session_id}")

    tools_configs.register(server, tools)
    tools_files.register(server, tools)
    tools_admin.register(server, tools)
    forbid_unknown_arguments(server)
    return server


def forbid_unknown_arguments(server: MCPServer[Any]) -> None:
    """Make every tool refuse arguments it does not know (a misspelt `timeout` must not pass silently).

    The SDK builds a permissive argument model per tool; tighten each one and say so in its schema.
    """
    manager = getattr(server, "_tool_manager", None)
    for tool in manager.list_tools() if manager is not None else []:
        model = tool.fn_metadata.arg_model
        model.model_config["extra"] = "forbid"
        model.model_rebuild(force=True)
        tool.parameters["additionalProperties"] = False


async def _follow(
    client: ApiClient,
    call: Callable[[Callable[[], Awaitable[CommandResult]]], Awaitable[CommandResult]],
    ctx: Context,
    res: CommandResult,
    start: float,
    budget: float,
    offset: int = 0,
    limit: int | None = None,
) -> CommandResult:
    """Keep waiting in short chunks, reporting MCP progress between them."""
    while res.status == "running":
        elapsed = time.monotonic() - start
        if elapsed >= budget - 0.05:
            break
        await ctx.report_progress(elapsed, budget, f"{res.command_id} running for {elapsed:.0f}s")
        step = min(CHUNK_SECONDS, budget - elapsed)

        def again(
            sid: str = res.session_id, cid: str = res.command_id, wait: float = step
        ) -> Awaitable[CommandResult]:
            return client.get_command(sid, cid, offset=offset, limit=limit, wait=wait)

        res = await call(again)
    return res


async def run_stdio(paths: Paths) -> None:
    async with ApiClient(paths.socket) as client:
        await build_server(paths, client).run_stdio_async()
