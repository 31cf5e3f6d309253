"""Routes of files and side commands: thin wrappers over `sshkeep.daemon.files.transfers`."""

from __future__ import annotations

from aiohttp import web

from sshkeep.common.models.files import (
    ExecRequest,
    ExecResult,
    ReadFileRequest,
    ReadFileResult,
    WriteFileRequest,
    WriteFileResult,
)
from sshkeep.daemon.api.core import MANAGER, Call, caller, endpoint, guard, manager, note_decision
from sshkeep.daemon.files import transfers
from sshkeep.daemon.files.sidechannel import channels

routes = web.RouteTableDef()


async def close_side_channels(app: web.Application) -> None:
    """On shutdown, end every session's SFTP side channel (the sessions themselves stay)."""
    await channels(app[MANAGER]).close_all()


@endpoint(routes, "read_remote_file")
async def read_file(request: web.Request, call: Call) -> ReadFileResult:
    return await transfers.read_remote_file(manager(request), call.session_id, call.body(ReadFileRequest))


@endpoint(routes, "write_remote_file")
async def write_file(request: web.Request, call: Call) -> WriteFileResult:
    body = call.body(WriteFileRequest)
    decision = await guard(request).check_file_write(
        call.session_id, body.remote_path, body.content, body.append, by=caller(request)
    )
    note_decision(request, decision)
    decision.raise_unless_allowed()
    return await transfers.write_remote_file(manager(request), call.session_id, body)


@endpoint(routes, "exec_command")
async def exec_command(request: web.Request, call: Call) -> ExecResult:
    body = call.body(ExecRequest)
    decision = await guard(request).check_command(
        call.session_id, body.command, operation="exec_command", by=caller(request)
    )
    note_decision(request, decision)
    decision.raise_unless_allowed()
    return await transfers.exec_command(manager(request), call.session_id, body)
