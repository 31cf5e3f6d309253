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
from sshkeep.daemon.api.core import MANAGER, Call, endpoint, manager
from sshkeep.daemon.files import local, transfers
from sshkeep.daemon.files.sidechannel import channels

routes = web.RouteTableDef()


async def close_side_channels(app: web.Application) -> None:
    """On shutdown, end every session's SFTP side channel (the sessions themselves stay)."""
    await channels(app[MANAGER]).close_all()


@endpoint(routes, "read_remote_file")
async def read_file(request: web.Request, call: Call) -> ReadFileResult:
    body = call.body(ReadFileRequest)
    if body.local_path is not None or body.metadata_only:
        return await local.read_to_local(manager(request), call.session_id, body)
    return await transfers.read_remote_file(manager(request), call.session_id, body)


@endpoint(routes, "write_remote_file")
async def write_file(request: web.Request, call: Call) -> WriteFileResult:
    body = call.body(WriteFileRequest)
    if body.local_path is not None:
        return await local.write_from_local(manager(request), call.session_id, body)
    return await transfers.write_remote_file(manager(request), call.session_id, body)


@endpoint(routes, "exec_command")
async def exec_command(request: web.Request, call: Call) -> ExecResult:
    return await transfers.exec_command(manager(request), call.session_id, call.body(ExecRequest))
