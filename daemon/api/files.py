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
from sshkeep.daemon.api.core import Call, endpoint, transfers

routes = web.RouteTableDef()


@endpoint(routes, "read_remote_file")
async def read_file(request: web.Request, call: Call) -> ReadFileResult:
    return await transfers(request).read(call.session_id, call.body(ReadFileRequest))


@endpoint(routes, "write_remote_file")
async def write_file(request: web.Request, call: Call) -> WriteFileResult:
    return await transfers(request).write(call.session_id, call.body(WriteFileRequest))


@endpoint(routes, "exec_command")
async def exec_command(request: web.Request, call: Call) -> ExecResult:
    return await transfers(request).exec(call.session_id, call.body(ExecRequest))
