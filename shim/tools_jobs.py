"""MCP tools for terminals and jobs: open/close a terminal; start, list, follow and stop a job."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, InputRequiredResult

from sshkeep.common.models.jobs import (
    CloseTerminalResult,
    JobList,
    JobQuery,
    JobResult,
    JobsQuery,
    OpenTerminalRequest,
    ReadySpec,
    StartJobRequest,
    StopJobRequest,
    TerminalInfo,
)
from sshkeep.shim import inline, render_text
from sshkeep.shim.tools_base import Tools, param, tool

CHUNK_SECONDS = 5.0


def register(server: MCPServer[Any], tools: Tools) -> None:
    """Add this group's tools to the server."""
    client, call, result = tools.client, tools.call, tools.result

    def job_result(res: JobResult) -> CallToolResult:
        res = inline.bounded_job(res)  # a large page would be slow to send whole over stdio
        return result(res, render_text.job(res))

    @tool(server, "open_terminal")
    async def open_terminal(
        session_id: Annotated[str, param("open_terminal", "session_id")],
        name: Annotated[str | None, param("open_terminal", "name")] = None,
    ) -> Annotated[CallToolResult, TerminalInfo]:
        """Open another shell in the session for parallel work: same SSH connection (no new login),
        its own output and commands. Pass its name as `terminal` to send_command and the others."""
        res = await call(lambda: client.open_terminal(session_id, OpenTerminalRequest(name=name)))
        return result(res, f"terminal {res.terminal} of {res.session_id}: {res.state}\nwatch: {res.attach}")

    @tool(server, "close_terminal")
    async def close_terminal(
        session_id: Annotated[str, param("close_terminal", "session_id")],
        terminal: Annotated[str, param("close_terminal", "terminal")],
    ) -> Annotated[CallToolResult, CloseTerminalResult]:
        """Close a terminal opened with open_terminal (its shell and output)."""
        res = await call(lambda: client.close_terminal(session_id, terminal))
        return result(res, f"closed terminal {res.terminal} of {res.session_id}")

    @tool(server, "start_job")
    async def start_job(
        session_id: Annotated[str, param("start_job", "session_id")],
        command: Annotated[str, param("start_job", "command")],
        ctx: Context,
        name: Annotated[str | None, param("start_job", "name")] = None,
        ready: Annotated[ReadySpec | None, param("start_job", "ready")] = None,
        durable: Annotated[bool, param("start_job", "durable")] = False,
        cwd: Annotated[str | None, param("start_job", "cwd")] = None,
    ) -> Annotated[CallToolResult, JobResult] | InputRequiredResult:
        """Run a long-lived command (dev server, watcher, `tail -f`, long build) as a background job
        in a terminal of its own; returns at once with job_id, or with `ready` once its output
        matches a regex or a port accepts. Follow with get_job, end with stop_job."""
        req = StartJobRequest(command=command, name=name, ready=ready, durable=durable, cwd=cwd)
        res = await tools.guarded(ctx, lambda: client.start_job(session_id, req))
        if isinstance(res, InputRequiredResult):
            return res
        return job_result(res)

    @tool(server, "list_jobs")
    async def list_jobs(
        session_id: Annotated[str | None, param("list_jobs", "session_id")] = None,
    ) -> Annotated[CallToolResult, JobList]:
        """List jobs: status (running/exited/stopped ...), exit code, start time, last output line."""
        res = await call(lambda: client.list_jobs(JobsQuery(session_id=session_id)))
        return result(res, render_text.jobs(res))

    @tool(server, "get_job")
    async def get_job(
        job_id: Annotated[str, param("get_job", "job_id")],
        ctx: Context,
        offset: Annotated[int, param("get_job", "offset")] = 0,
        limit: Annotated[int | None, param("get_job", "limit")] = None,
        wait: Annotated[float, param("get_job", "wait")] = 0.0,
    ) -> Annotated[CallToolResult, JobResult]:
        """A job's status and output (paged like get_command); `wait` s for it to end."""
        start = time.monotonic()
        while True:
            remaining = max(0.0, wait - (time.monotonic() - start))
            query = JobQuery(offset=offset, limit=limit, wait=min(CHUNK_SECONDS, remaining))

            def once(q: JobQuery = query) -> Awaitable[JobResult]:
                return client.get_job(job_id, q)

            res = await call(once)
            if res.status not in ("running", "starting") or remaining <= CHUNK_SECONDS:
                break
            elapsed = time.monotonic() - start
            await ctx.report_progress(elapsed, wait, f"{job_id} running for {elapsed:.0f}s")
        return job_result(res)

    @tool(server, "stop_job")
    async def stop_job(
        job_id: Annotated[str, param("stop_job", "job_id")],
        grace: Annotated[float, param("stop_job", "grace")] = 3.0,
    ) -> Annotated[CallToolResult, JobResult]:
        """Stop a job: Ctrl-C (SIGINT), then SIGTERM, then SIGKILL, waiting `grace` s after each;
        says which one ended it."""
        res = await call(lambda: client.stop_job(job_id, StopJobRequest(grace=grace)))
        return job_result(res)
