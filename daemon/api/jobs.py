"""Routes of terminals and jobs: open/close a terminal; start, list, page and stop a job."""

from __future__ import annotations

from aiohttp import web

from sshkeep.common.models.jobs import (
    CloseTerminalResult,
    JobList,
    JobQuery,
    JobResult,
    JobsQuery,
    OpenTerminalRequest,
    StartJobRequest,
    StopJobRequest,
    TerminalInfo,
)
from sshkeep.daemon.api.core import Call, caller, endpoint, guard, jobs, manager, note_decision

routes = web.RouteTableDef()


@endpoint(routes, "open_terminal")
async def open_terminal(request: web.Request, call: Call) -> TerminalInfo:
    m = manager(request)
    body = call.body(OpenTerminalRequest)
    t = await m.terminals.open(call.session_id, body.name, body.timeout)
    return m.terminals.info(t)


@endpoint(routes, "close_terminal")
async def close_terminal(request: web.Request, call: Call) -> CloseTerminalResult:
    name = call.params["terminal"]
    await manager(request).terminals.close(call.session_id, name)
    return CloseTerminalResult(session_id=call.session_id, terminal=name, closed=True)


@endpoint(routes, "start_job")
async def start_job(request: web.Request, call: Call) -> JobResult:
    body = call.body(StartJobRequest)
    # The guard rails apply to a job's command as to any command typed into a terminal.
    decision = await guard(request).check_command(
        call.session_id, body.command, operation="start_job", by=caller(request)
    )
    note_decision(request, decision)
    decision.raise_unless_allowed()
    return await jobs(request).start(call.session_id, body)


@endpoint(routes, "list_jobs")
async def list_jobs(request: web.Request, call: Call) -> JobList:
    return jobs(request).listing(call.query(JobsQuery).session_id)


@endpoint(routes, "get_job")
async def get_job(request: web.Request, call: Call) -> JobResult:
    j = jobs(request)
    q = call.query(JobQuery)
    return await j.result(j.get(call.params["job_id"]), offset=q.offset, limit=q.limit, wait=q.wait)


@endpoint(routes, "stop_job")
async def stop_job(request: web.Request, call: Call) -> JobResult:
    return await jobs(request).stop(call.params["job_id"], call.body(StopJobRequest).grace)
