"""The app factory: the HTTP+JSON API under /v1/, thin routes over the session manager.

Each route module owns a `RouteTableDef`; this factory adds them, the middlewares (errors, peer
uid, audit) and the background tasks tied to the app's life. Every failure leaves as
`{"error": {"code", "message", "hint"}}` with a fitting status, and never takes the daemon down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from sshkeep.daemon.api import admin, audit, commands, configs, control, files, sessions
from sshkeep.daemon.api.core import MANAGER, MAX_BODY, STARTED, errors_middleware
from sshkeep.daemon.sessions.manager import SessionManager
from sshkeep.daemon.sessions.reaper import reap_forever

ROUTE_GROUPS: tuple[web.RouteTableDef, ...] = (
    sessions.routes,
    commands.routes,
    control.routes,
    files.routes,
    configs.routes,
    admin.routes,
)


async def _dead_session_reaper(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(reap_forever(app[MANAGER]), name="dead-session-reaper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def build_app(m: SessionManager) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY)
    app[MANAGER] = m
    app[STARTED] = time.monotonic()
    audit.install(app, m)  # outermost middleware: it sees the final status of every request
    app.cleanup_ctx.append(_dead_session_reaper)
    app.on_cleanup.append(files.close_side_channels)
    for group in ROUTE_GROUPS:
        app.add_routes(group)
    return app
