"""MCP tools for commands and the terminal: send, follow/page, keys, interrupt, wait, search, screen.

A wait is split into short daemon calls with an MCP progress notification between them: the
first within a second, then at least every 2 s, each carrying the newest output line, so clients
that restart their idle clock on progress can wait long (up to settings.mcp_max_wait_seconds when
the call carries a progress token).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, InputRequiredResult

from sshkeep.common.client import ApiClient
from sshkeep.common.models.base import MAX_WAIT_SECONDS
from sshkeep.common.models.sessions import (
    CommandQuery,
    CommandResult,
    InterruptRequest,
    SearchRequest,
    SearchResult,
    SendCommandRequest,
    SendKeysRequest,
    SendKeysResult,
    Snapshot,
    SnapshotQuery,
    WaitForRequest,
    WaitForResult,
)
from sshkeep.shim import inline, render_text
from sshkeep.shim.tools_base import Progress, Tools, host_param, optional_session, param, tool

# The most one daemon call waits while the shim follows a command (progress goes out between).
CHUNK_SECONDS = 1.8


def register(server: MCPServer[Any], tools: Tools) -> None:
    """Add this group's tools to the server."""
    client, call, result = tools.client, tools.call, tools.result

    def command_result(res: CommandResult) -> CallToolResult:
        res = inline.bounded_command(res)  # a large page would be slow to send whole over stdio
        return result(res, render_text.command(res))

    @tool(server, "send_command")
    async def send_command(
        command: Annotated[str, param("send_command", "command")],
        ctx: Context,
        session_id: Annotated[str | None, optional_session()] = None,
        host: Annotated[str | None, host_param()] = None,
        timeout: Annotated[float, param("send_command", "timeout")] = 10.0,
        terminal: Annotated[str | None, param("send_command", "terminal")] = None,
        local_path: Annotated[str | None, param("send_command", "local_path")] = None,
    ) -> Annotated[CallToolResult, CommandResult] | InputRequiredResult:
        """Run a command in the terminal (cwd, variables persist); returns exit code and
        output when it ends. Use host to skip open_session."""
        tools.check_wait(ctx, "send_command", "timeout", timeout)
        progress = Progress(ctx, timeout)

        async def run(sid: str) -> CommandResult | InputRequiredResult:
            first = progress.next_chunk(min(timeout, CHUNK_SECONDS))
            # One key per call: when the daemon restarts under it, the retry (tools.call) carries the
            # same key and gets this command's result; the command is never typed twice.
            body = SendCommandRequest(
                command=command,
                timeout=first,
                terminal=terminal,
                local_path=local_path,
                request_id=os.urandom(12).hex(),
            )
            res = await tools.guarded(ctx, lambda: client.send_command(sid, body))
            if isinstance(res, InputRequiredResult):
                return res
            return await _follow(
                client, tools, progress, res, timeout, terminal=terminal, local_path=local_path
            )

        res = await tools.on_host(session_id, host, run)
        if isinstance(res, InputRequiredResult):
            return res
        return command_result(res)

    @tool(server, "get_command")
    async def get_command(
        session_id: Annotated[str, param("get_command", "session_id")],
        command_id: Annotated[str, param("get_command", "command_id")],
        ctx: Context,
        offset: Annotated[int, param("get_command", "offset")] = 0,
        limit: Annotated[int | None, param("get_command", "limit")] = None,
        wait: Annotated[float, param("get_command", "wait")] = 0.0,
        terminal: Annotated[str | None, param("get_command", "terminal")] = None,
        local_path: Annotated[str | None, param("get_command", "local_path")] = None,
    ) -> Annotated[CallToolResult, CommandResult]:
        """Follow a running command (wait) or page its output (offset). To find lines: search_output."""
        tools.check_wait(ctx, "get_command", "wait", wait)
        progress = Progress(ctx, wait)
        first = progress.next_chunk(min(wait, CHUNK_SECONDS)) if wait > 0 else 0.0
        query = CommandQuery(offset=offset, limit=limit, wait=first, terminal=terminal, local_path=local_path)
        res = await call(lambda: client.get_command(session_id, command_id, query))
        if wait > 0:
            res = await _follow(
                client,
                tools,
                progress,
                res,
                wait,
                offset=offset,
                limit=limit,
                terminal=terminal,
                local_path=local_path,
            )
        return command_result(res)

    @tool(server, "send_keys")
    async def send_keys(
        session_id: Annotated[str, param("send_keys", "session_id")],
        keys: Annotated[list[str], param("send_keys", "keys")],
        ctx: Context,
        terminal: Annotated[str | None, param("send_keys", "terminal")] = None,
        wait: Annotated[float, param("send_keys", "wait")] = 3.0,
    ) -> Annotated[CallToolResult, SendKeysResult] | InputRequiredResult:
        """Type keys: answer a question, drive a full-screen program. Returns the command's result."""
        res = await tools.guarded(
            ctx,
            lambda: client.send_keys(session_id, SendKeysRequest(keys=keys, wait=wait, terminal=terminal)),
        )
        if isinstance(res, InputRequiredResult):
            return res
        if res.result is not None:
            bounded = inline.bounded_command(res.result)
            if bounded is not res.result:
                res.result = bounded
            return result(res, render_text.command(bounded))
        return result(res, f"sent {res.sent} key item(s). {res.hint or ''}".strip())

    @tool(server, "interrupt_command")
    async def interrupt_command(
        session_id: Annotated[str, param("interrupt_command", "session_id")],
        terminal: Annotated[str | None, param("interrupt_command", "terminal")] = None,
    ) -> Annotated[CallToolResult, CommandResult]:
        """Ctrl-C the running command; returns its result (new output only)."""
        res = await call(lambda: client.interrupt_command(session_id, InterruptRequest(terminal=terminal)))
        return command_result(res)

    @tool(server, "wait_for")
    async def wait_for(
        session_id: Annotated[str, param("wait_for", "session_id")],
        pattern: Annotated[str, param("wait_for", "pattern")],
        ctx: Context,
        timeout: Annotated[float, param("wait_for", "timeout")] = 10.0,
        terminal: Annotated[str | None, param("wait_for", "terminal")] = None,
    ) -> Annotated[CallToolResult, WaitForResult]:
        """Wait until new output matches a regex. For output already printed: search_output."""
        tools.check_wait(ctx, "wait_for", "timeout", timeout)
        progress = Progress(ctx, timeout)
        since: int | None = None
        while True:
            remaining = max(0.0, timeout - progress.elapsed())
            req = WaitForRequest(
                pattern=pattern, timeout=progress.next_chunk(remaining), since=since, terminal=terminal
            )

            def once(r: WaitForRequest = req) -> Awaitable[WaitForResult]:
                return client.wait_for(session_id, r)

            res = await call(once)
            if res.matched or res.command_status is not None or progress.elapsed() >= timeout - 0.05:
                break
            since = res.searched_to
            await progress.report(f"waiting for /{pattern}/ for {progress.elapsed():.0f}s")
        text = f"matched: {res.line}\n{res.context}" if res.matched else f"no match. {res.hint or ''}"
        return result(res, text)

    @tool(server, "search_output")
    async def search_output(
        session_id: Annotated[str, param("search_output", "session_id")],
        pattern: Annotated[str, param("search_output", "pattern")],
        command_id: Annotated[str | None, param("search_output", "command_id")] = None,
        context: Annotated[int, param("search_output", "context")] = 2,
        max_matches: Annotated[int, param("search_output", "max_matches")] = 20,
        ignore_case: Annotated[bool, param("search_output", "ignore_case")] = False,
    ) -> Annotated[CallToolResult, SearchResult]:
        """Regex over a command's whole output: matches, context, line numbers (get_command offsets);
        better than paging."""
        body = SearchRequest(
            pattern=pattern,
            command_id=command_id,
            context=context,
            max_matches=max_matches,
            ignore_case=ignore_case,
        )
        res = await call(lambda: client.search_output(session_id, body))
        return result(res, render_text.search(res))

    @tool(server, "get_snapshot")
    async def get_snapshot(
        session_id: Annotated[str, param("get_snapshot", "session_id")],
        lines: Annotated[int, param("get_snapshot", "lines")] = 0,
        terminal: Annotated[str | None, param("get_snapshot", "terminal")] = None,
    ) -> Annotated[CallToolResult, Snapshot]:
        """The terminal screen as a person sees it."""
        res = await call(
            lambda: client.get_snapshot(session_id, SnapshotQuery(lines=lines, terminal=terminal))
        )
        return result(res, res.screen)


async def _follow(
    client: ApiClient,
    tools: Tools,
    progress: Progress,
    res: CommandResult,
    budget: float,
    offset: int = 0,
    limit: int | None = None,
    local_path: str | None = None,
    terminal: str | None = None,
) -> CommandResult:
    """Keep waiting in short chunks, with a progress notification (newest output line) between them."""
    while res.status == "running":
        elapsed = progress.elapsed()
        if elapsed >= budget - 0.05:
            break
        await progress.report(_progress_text(res, elapsed))
        step = progress.next_chunk(min(CHUNK_SECONDS, MAX_WAIT_SECONDS, budget - progress.elapsed()))

        def again(
            sid: str = res.session_id, cid: str = res.command_id, wait: float = step
        ) -> Awaitable[CommandResult]:
            return client.get_command(
                sid, cid, CommandQuery(offset=offset, limit=limit, wait=wait, terminal=terminal)
            )

        res = await tools.call(again)
    if local_path is not None and res.saved is None:
        # Saved once, at the end: the chunks in between only watched it run.
        done = res

        def save() -> Awaitable[CommandResult]:
            return client.get_command(
                done.session_id, done.command_id, CommandQuery(local_path=local_path, terminal=terminal)
            )

        res = await tools.call(save)
    return res


def _progress_text(res: CommandResult, elapsed: float) -> str:
    newest = next((ln.strip() for ln in reversed(res.output.splitlines()) if ln.strip()), "")
    if len(newest) > 120:
        newest = newest[:117] + "..."
    return f"{res.command_id} running {elapsed:.0f}s" + (f": {newest}" if newest else "")
