"""Routes of the daemon and its sessions: health, list, open, one session, close, reconnect."""

from __future__ import annotations

import os
import time

from aiohttp import web

from sshkeep import __version__
from sshkeep.common.models.sessions import (
    CloseResult,
    Health,
    OpenSessionRequest,
    ReconnectRequest,
    SessionForHostRequest,
    SessionInfo,
    SessionList,
)
from sshkeep.daemon.api.core import STARTED, Call, endpoint, manager

routes = web.RouteTableDef()


@endpoint(routes, "health")
async def health(request: web.Request, call: Call) -> Health:
    m = manager(request)
    return Health(
        version=__version__,
        pid=os.getpid(),
        socket=str(m.paths.socket),
        sessions=len(m.sessions),
        attach=m.paths.attach_command(),
        uptime_seconds=round(time.monotonic() - request.app[STARTED], 3),
    )


@endpoint(routes, "list_sessions")
async def list_sessions(request: web.Request, call: Call) -> SessionList:
    return SessionList(sessions=manager(request).infos())


@endpoint(routes, "open_session")
async def open_session(request: web.Request, call: Call) -> SessionInfo:
    return await manager(request).open(call.body(OpenSessionRequest))


@endpoint(routes, "session_for_host")
async def session_for_host(request: web.Request, call: Call) -> SessionInfo:
    return await manager(request).session_for_host(call.body(SessionForHostRequest))


@endpoint(routes, "get_session")
async def get_session(request: web.Request, call: Call) -> SessionInfo:
    m = manager(request)
    return m.info(m.get(call.session_id))


@endpoint(routes, "close_session")
async def close_session(request: web.Request, call: Call) -> CloseResult:
    await manager(request).close(call.session_id)
    return CloseResult(session_id=call.session_id, closed=True)


@endpoint(routes, "reconnect_session")
async def reconnect(request: web.Request, call: Call) -> SessionInfo:
    return await manager(request).reconnect(call.session_id, call.body(ReconnectRequest).timeout)
