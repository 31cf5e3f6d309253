"""Admin routes: the OpenAPI document and cleaning up dead sessions."""

from __future__ import annotations

from aiohttp import web

from sshkeep import __version__
from sshkeep.common.models.admin import CleanupRequest, CleanupResult
from sshkeep.daemon.api import openapi
from sshkeep.daemon.api.core import Call, endpoint, reaper

routes = web.RouteTableDef()


@endpoint(routes, "openapi")
async def openapi_json(request: web.Request, call: Call) -> web.Response:
    return web.json_response(openapi.document(__version__))


@endpoint(routes, "cleanup_dead_sessions")
async def cleanup(request: web.Request, call: Call) -> CleanupResult:
    return await reaper(request).cleanup(call.body(CleanupRequest).max_age_seconds)
