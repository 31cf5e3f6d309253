"""The app factory: the HTTP+JSON API under /v1/, thin routes over the session manager.

Each route module owns a `RouteTableDef`; this factory adds them, the middlewares (errors, peer
uid, audit) and the services' app keys. Every failure leaves as
`{"error": {"code", "message", "hint"}}` with a fitting status, and never takes the daemon down.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiohttp import web

from sshkeep.daemon.api import admin, audit, commands, configs, control, files, jobs, policy, sessions
from sshkeep.daemon.api.core import (
    ANSWERS,
    COMMANDS,
    CONTROL,
    DISK,
    GUARD,
    JOBS,
    LOCAL_FILES,
    MANAGER,
    MAX_BODY,
    REAPER,
    STARTED,
    TRANSFERS,
    Services,
    errors_middleware,
)

# aiohttp tries the routes under one path prefix (`/v1/sessions/…`) in the order they were added,
# one regular expression each: the commands' routes (every send, page and key) come first.
ROUTE_GROUPS: tuple[web.RouteTableDef, ...] = (
    commands.routes,
    sessions.routes,
    control.routes,
    jobs.routes,
    files.routes,
    configs.routes,
    admin.routes,
    policy.routes,
)


async def _approval_sweeper(app: web.Application) -> AsyncIterator[None]:
    """Lapsed approval requests are recorded as expired even when nobody asks about them."""
    task = asyncio.create_task(app[GUARD].sweep_forever(), name="approval-sweeper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def build_app(services: Services) -> web.Application:
    """The app over `services` (built, started and stopped by daemon/server.py)."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY)
    app[MANAGER] = services.manager
    app[COMMANDS] = services.commands
    app[ANSWERS] = services.answers
    app[CONTROL] = services.control
    app[JOBS] = services.jobs
    app[TRANSFERS] = services.transfers
    app[LOCAL_FILES] = services.local_files
    app[REAPER] = services.reaper
    app[GUARD] = services.guard
    app[STARTED] = time.monotonic()
    app[DISK] = services.disk
    # Outermost middleware: it sees the final status of every request.
    audit.install(
        app, services.audit_log, services.daemon_log, services.settings, services.manager.sessions.get
    )
    services.guard.attach_audit(app[audit.AUDIT].write)  # every decision lands in the audit log
    services.disk.watch("audit log", app[audit.AUDIT].waiting)
    app.cleanup_ctx.append(_approval_sweeper)
    for group in ROUTE_GROUPS:
        app.add_routes(group)
    return app
