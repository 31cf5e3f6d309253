"""API routes for files and side commands: thin wrappers over daemon/files.py.

- `POST /v1/sessions/{sid}/files/read`  body ReadFileRequest  -> ReadFileResult
- `POST /v1/sessions/{sid}/files/write` body WriteFileRequest -> WriteFileResult
- `POST /v1/sessions/{sid}/exec`        body ExecRequest      -> ExecResult
"""

from __future__ import annotations

from aiohttp import web

from common.models_files import ExecRequest, ReadFileRequest, WriteFileRequest
from daemon import app as core  # circular: app imports this module; used at call time only
from daemon import files
from daemon.sidechannel import channels


async def close_side_channels(app: web.Application) -> None:
    """On shutdown, end every session's SFTP side channel (the sessions themselves stay)."""
    await channels(app[core.MANAGER]).close_all()


async def read_file(request: web.Request) -> web.Response:
    req = await core.parse_body(request, ReadFileRequest)
    return core.reply(await files.read_remote_file(core.manager(request), request.match_info["sid"], req))


async def write_file(request: web.Request) -> web.Response:
    req = await core.parse_body(request, WriteFileRequest)
    return core.reply(await files.write_remote_file(core.manager(request), request.match_info["sid"], req))


async def exec_command(request: web.Request) -> web.Response:
    req = await core.parse_body(request, ExecRequest)
    return core.reply(await files.exec_command(core.manager(request), request.match_info["sid"], req))


routes: list[web.RouteDef] = [
    web.post("/v1/sessions/{sid}/files/read", read_file),
    web.post("/v1/sessions/{sid}/files/write", write_file),
    web.post("/v1/sessions/{sid}/exec", exec_command),
]
