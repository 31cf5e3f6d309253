"""Admin routes: the OpenAPI document, cleaning up dead sessions, and the periodic reaper."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from common import settings as tunables
from common.errors import SessionNotFound
from common.models_admin import CleanupRequest, CleanupResult
from daemon import app as core
from daemon import openapi
from daemon.manager import SessionManager

log = structlog.get_logger(__name__)

# The reaper re-reads config.yml at least this often, so a changed max age applies quickly.
REAP_INTERVAL_MAX = 5.0


async def cleanup_dead_sessions(m: SessionManager, max_age: float) -> CleanupResult:
    """Close every disconnected session that has been dead for at least `max_age` seconds."""
    now = time.time()
    removed: list[str] = []
    kept: list[str] = []
    for sid, s in list(m.sessions.items()):
        if not s.dead or s.closed:
            continue
        age = now - s.dead_at if s.dead_at is not None else 0.0
        if age < max_age:
            kept.append(sid)
            continue
        try:
            await m.close(sid)
        except SessionNotFound:
            continue  # closed meanwhile by another request
        removed.append(sid)
    if removed:
        log.info("dead_sessions_removed", sessions=removed, max_age=max_age)
    return CleanupResult(removed=removed, kept=kept, max_age_seconds=max_age)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(openapi.document(request.app, core.VERSION))


async def cleanup(request: web.Request) -> web.Response:
    req = await core.parse_body(request, CleanupRequest)
    return core.reply(await cleanup_dead_sessions(core.manager(request), req.max_age_seconds))


async def _reap_forever(m: SessionManager) -> None:
    while True:
        interval = REAP_INTERVAL_MAX  # also when off: look at the config again later
        try:
            settings = (await asyncio.to_thread(m.config.current)).settings
            max_age = tunables.dead_session_max_age(settings)
            if max_age > 0:
                interval = min(REAP_INTERVAL_MAX, max(0.5, max_age / 4))
                await cleanup_dead_sessions(m, max_age)
        except Exception:  # the reaper must outlive any one failure
            log.exception("reaper_failed")
        await asyncio.sleep(interval)


async def dead_session_reaper(app: web.Application) -> AsyncIterator[None]:
    """aiohttp cleanup_ctx: run the reaper while the app runs."""
    task = asyncio.create_task(_reap_forever(app[core.MANAGER]), name="dead-session-reaper")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


routes: list[web.RouteDef] = [
    web.get("/v1/openapi.json", openapi_json),
    web.post("/v1/sessions/cleanup", cleanup),
]
