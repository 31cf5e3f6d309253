"""Routes of files and side commands: thin wrappers over the `Transfers` service."""

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
from sshkeep.daemon.api.core import Call, caller, endpoint, guard, local_files, note_decision, transfers

routes = web.RouteTableDef()


@endpoint(routes, "read_remote_file")
async def read_file(request: web.Request, call: Call) -> ReadFileResult:
    body = call.body(ReadFileRequest)
    if body.local_path is not None or body.metadata_only:
        return await local_files(request).read_to_local(call.session_id, body)
    return await transfers(request).read(call.session_id, body)


@endpoint(routes, "write_remote_file")
async def write_file(request: web.Request, call: Call) -> WriteFileResult:
    body = call.body(WriteFileRequest)
    # A local upload is checked like any write of that path (its bytes are named by the file).
    content = body.content if body.content is not None else f"<local file {body.local_path}>"
    decision = await guard(request).check_file_write(
        call.session_id, body.remote_path, content, body.append, by=caller(request)
    )
    note_decision(request, decision)
    decision.raise_unless_allowed()
    if body.local_path is not None:
        return await local_files(request).write_from_local(call.session_id, body)
    return await transfers(request).write(call.session_id, body)


@endpoint(routes, "exec_command")
async def exec_command(request: web.Request, call: Call) -> ExecResult:
    body = call.body(ExecRequest)
    decision = await guard(request).check_command(
        call.session_id, body.command, operation="exec_command", by=caller(request)
    )
    note_decision(request, decision)
    decision.raise_unless_allowed()
    return await transfers(request).exec(call.session_id, body)
