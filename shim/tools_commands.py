"""MCP tools for commands and the terminal: send, follow/page, keys, interrupt, wait, screen.

Waits longer than one chunk are split into daemon calls of `CHUNK_SECONDS`, with an MCP progress
notification between them, so clients see the call is alive.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, InputRequiredResult

from sshkeep.common.client import ApiClient
from sshkeep.common.models.sessions import (
    CommandQuery,
    CommandResult,
    InterruptRequest,
    SendCommandRequest,
    SendKeysRequest,
    SendKeysResult,
    Snapshot,
    SnapshotQuery,
    WaitForRequest,
    WaitForResult,
)
from sshkeep.shim import render_text
from sshkeep.shim.tools_base import Tools, param, tool

CHUNK_SECONDS = 5.0


def register(server: MCPServer[Any], tools: Tools) -> None:
    """Add this group's tools to the server."""
    client, call, result = tools.client, tools.call, tools.result

    @tool(server, "send_command")
    async def send_command(
        session_id: Annotated[str, param("send_command", "session_id")],
        command: Annotated[str, param("send_command", "command")],
        ctx: Context,
        timeout: Annotated[float, param("send_command", "timeout")] = 10.0,
        terminal: Annotated[str | None, param("send_command", "terminal")] = None,
    ) -> Annotated[CallToolResult, CommandResult] | InputRequiredResult:
        """Run a shell command in the session and wait (up to `timeout` s) for it to end."""
        start = time.monotonic()
        first = min(timeout, CHUNK_SECONDS)
        req = SendCommandRequest(command=command, timeout=first, terminal=terminal)
        res = await tools.guarded(ctx, lambda: client.send_command(session_id, req))
        if isinstance(res, InputRequiredResult):
            return res
        res = await _follow(client, call, ctx, res, start, timeout, terminal=terminal)
        return result(res, render_text.command(res))

    @tool(server, "get_command")
    async def get_command(
        session_id: Annotated[str, param("get_command", "session_id")],
        command_id: Annotated[str, param("get_command", "command_id")],
        ctx: Context,
        offset: Annotated[int, param("get_command", "offset")] = 0,
        limit: Annotated[int | None, param("get_command", "limit")] = None,
        wait: Annotated[float, param("get_command", "wait")] = 0.0,
        terminal: Annotated[str | None, param("get_command", "terminal")] = None,
    ) -> Annotated[CallToolResult, CommandResult]:
        """Status and output of a command; `wait` s for it to end; page long output with offset/limit."""
        start = time.monotonic()
        query = CommandQuery(offset=offset, limit=limit, wait=min(wait, CHUNK_SECONDS), terminal=terminal)
        res = await call(lambda: client.get_command(session_id, command_id, query))
        if wait > CHUNK_SECONDS:
            res = await _follow(
                client, call, ctx, res, start, wait, offset=offset, limit=limit, terminal=terminal
            )
        return result(res, render_text.command(res))

    @tool(server, "send_keys")
    async def send_keys(
        session_id: Annotated[str, param("send_keys", "session_id")],
        keys: Annotated[list[str], param("send_keys", "keys")],
        ctx: Context,
        terminal: Annotated[str | None, param("send_keys", "terminal")] = None,
    ) -> Annotated[CallToolResult, SendKeysResult] | InputRequiredResult:
        """Type keys into the terminal: tmux key names (Enter, C-c, Up, Tab) or literal text."""
        req = SendKeysRequest(keys=keys, terminal=terminal)
        res = await tools.guarded(ctx, lambda: client.send_keys(session_id, req))
        if isinstance(res, InputRequiredResult):
            return res
        return result(res, f"sent {res.sent} key item(s) to {res.session_id}. {res.hint or ''}".strip())

    @tool(server, "interrupt_command")
    async def interrupt_command(
        session_id: Annotated[str, param("interrupt_command", "session_id")],
        terminal: Annotated[str | None, param("interrupt_command", "terminal")] = None,
    ) -> Annotated[CallToolResult, CommandResult]:
        """Send Ctrl-C to the running command and wait for the prompt."""
        res = await call(lambda: client.interrupt_command(session_id, InterruptRequest(terminal=terminal)))
        return result(res, render_text.command(res))

    @tool(server, "wait_for")
    async def wait_for(
        session_id: Annotated[str, param("wait_for", "session_id")],
        pattern: Annotated[str, param("wait_for", "pattern")],
        ctx: Context,
        timeout: Annotated[float, param("wait_for", "timeout")] = 10.0,
        terminal: Annotated[str | None, param("wait_for", "terminal")] = None,
    ) -> Annotated[CallToolResult, WaitForResult]:
        """Wait until new terminal output matches a regex (or the running command ends)."""
        start = time.monotonic()
        since: int | None = None
        while True:
            remaining = max(0.0, timeout - (time.monotonic() - start))
            req = WaitForRequest(
                pattern=pattern, timeout=min(CHUNK_SECONDS, remaining), since=since, terminal=terminal
            )

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

    @tool(server, "get_snapshot")
    async def get_snapshot(
        session_id: Annotated[str, param("get_snapshot", "session_id")],
        lines: Annotated[int, param("get_snapshot", "lines")] = 0,
        terminal: Annotated[str | None, param("get_snapshot", "terminal")] = None,
    ) -> Annotated[CallToolResult, Snapshot]:
        """The terminal screen as a person sees it (plus `lines` of scrollback)."""
        res = await call(
            lambda: client.get_snapshot(session_id, SnapshotQuery(lines=lines, terminal=terminal))
        )
        return result(res, res.screen)


async def _follow(
    client: ApiClient,
    call: Callable[[Callable[[], Awaitable[CommandResult]]], Awaitable[CommandResult]],
    ctx: Context,
    res: CommandResult,
    start: float,
    budget: float,
    offset: int = 0,
    limit: int | None = None,
    terminal: str | None = None,
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
            return client.get_command(
                sid, cid, CommandQuery(offset=offset, limit=limit, wait=wait, terminal=terminal)
            )

        res = await call(again)
    return res
