"""The HTTP+JSON API under /v1/: thin routes over the SessionManager.

Every request body is validated with its `common.models` model; every failure leaves as
`{"error": {"code", "message", "hint"}}` with a fitting status, and never takes the daemon down.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from aiohttp import web
from pydantic import BaseModel, ValidationError

from common.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge, SshkeepError
from common.models import (
    CloseResult,
    Health,
    OpenSessionRequest,
    ReconnectRequest,
    Request,
    SendCommandRequest,
    SendKeysRequest,
    SessionList,
    WaitForRequest,
)
from daemon import api_admin, api_configs, api_files, audit
from daemon.manager import SessionManager
from daemon.peer import peer_of

log = structlog.get_logger(__name__)

VERSION = "0.1.0"
MAX_BODY = 96 * 1024 * 1024
MANAGER = web.AppKey("manager", SessionManager)
STARTED = web.AppKey("started", float)

M = TypeVar("M", bound=Request)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(err: SshkeepError) -> web.Response:
    return web.json_response({"error": err.to_dict()}, status=err.status)


def validation_message(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "body"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request.get("request_id") or request.headers.get("X-Request-Id") or uuid.uuid4().hex[:12]
    structlog.contextvars.bind_contextvars(request_id=rid)
    try:
        peer = peer_of(request)
        uid = peer.uid if peer is not None else None
        if uid is not None and uid != os.getuid():
            log.warning("peer_refused", uid=uid)
            raise Forbidden(f"uid {uid} may not use this daemon (it belongs to uid {os.getuid()})")
        return await handler(request)
    except SshkeepError as err:
        if err.status >= 500:
            log.warning("request_failed", path=request.path, code=err.code, error=err.message)
        return error_response(err)
    except web.HTTPRequestEntityTooLarge:
        return error_response(PayloadTooLarge(f"request body larger than {MAX_BODY} bytes"))
    except web.HTTPNotFound:
        return error_response(
            NotFound(f"no API route {request.method} {request.path}", hint="See GET /v1/health.")
        )
    except web.HTTPMethodNotAllowed:
        return error_response(BadRequest(f"method {request.method} is not allowed on {request.path}"))
    except web.HTTPException as exc:
        return error_response(BadRequest(f"{exc.status} {exc.reason}"))
    except Exception as exc:  # the daemon must survive anything a request does
        log.exception("request_crashed", path=request.path)
        return error_response(SshkeepError(f"internal error: {type(exc).__name__}: {exc}"))
    finally:
        structlog.contextvars.unbind_contextvars("request_id")


async def parse_body(request: web.Request, model: type[M]) -> M:
    raw = await request.read()
    if not raw:
        raw = b"{}"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not UTF-8 (bad byte at offset {exc.start})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise BadRequest("request body is nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer literal with more than 4300 digits
        raise BadRequest(f"request body is not acceptable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadRequest("request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc)) from exc


def query_number(request: web.Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise BadRequest(f"{name}: not a number ({raw!r})") from exc
    if not low <= value <= high:
        raise BadRequest(f"{name}: must be between {low:g} and {high:g}")
    return value


def reply(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=model.model_dump_json(), status=status, content_type="application/json")


def manager(request: web.Request) -> SessionManager:
    return request.app[MANAGER]


async def health(request: web.Request) -> web.Response:
    m = manager(request)
    return reply(
        Health(
            version=VERSION,
            pid=os.getpid(),
            socket=str(m.paths.socket),
            sessions=len(m.sessions),
            attach=m.paths.attach_command(),
            uptime_seconds=round(time.monotonic() - request.app[STARTED], 3),
        )
    )


async def list_sessions(request: web.Request) -> web.Response:
    return reply(SessionList(sessions=manager(request).infos()))


async def open_session(request: web.Request) -> web.Response:
    req = await parse_body(request, OpenSessionRequest)
    info = await manager(request).open(req)
    return reply(info, status=201)


async def get_session(request: web.Request) -> web.Response:
    return reply(manager(request).get(request.match_info["sid"]).info())


async def close_session(request: web.Request) -> web.Response:
    sid = request.match_info["sid"]
    await manager(request).close(sid)
    return reply(CloseResult(session_id=sid, closed=True))


async def send_command(request: web.Request) -> web.Response:
    req = await parse_body(request, SendCommandRequest)
    result = await manager(request).commands.send_command(request.match_info["sid"], req.command, req.timeout)
    return reply(result)


async def get_command(request: web.Request) -> web.Response:
    cid = request.match_info["cid"]
    result = await manager(request).commands.get_command(
        request.match_info["sid"],
        None if cid == "last" else cid,
        offset=int(query_number(request, "offset", 0, 0, 1e12)),
        limit=int(query_number(request, "limit", 0, 1, 100_000)) if "limit" in request.query else None,
        wait=query_number(request, "wait", 0, 0, 50),
    )
    return reply(result)


async def send_keys(request: web.Request) -> web.Response:
    req = await parse_body(request, SendKeysRequest)
    return reply(await manager(request).commands.send_keys(request.match_info["sid"], req.keys))


async def interrupt(request: web.Request) -> web.Response:
    return reply(await manager(request).commands.interrupt(request.match_info["sid"]))


async def wait_for(request: web.Request) -> web.Response:
    req = await parse_body(request, WaitForRequest)
    return reply(
        await manager(request).commands.wait_for(
            request.match_info["sid"], req.pattern, req.timeout, req.since
        )
    )


async def reconnect(request: web.Request) -> web.Response:
    req = await parse_body(request, ReconnectRequest)
    return reply(await manager(request).reconnect(request.match_info["sid"], req.timeout))


async def screen(request: web.Request) -> web.Response:
    lines = int(query_number(request, "lines", 0, 0, 50_000))
    return reply(await manager(request).commands.snapshot(request.match_info["sid"], lines or None))


def build_app(m: SessionManager) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=MAX_BODY)
    app[MANAGER] = m
    app[STARTED] = time.monotonic()
    audit.install(app, m)  # outermost middleware: it sees the final status of every request
    app.cleanup_ctx.append(api_admin.dead_session_reaper)
    app.on_cleanup.append(api_files.close_side_channels)
    app.add_routes(
        [
            web.get("/v1/health", health),
            web.get("/v1/sessions", list_sessions),
            web.post("/v1/sessions", open_session),
            web.get("/v1/sessions/{sid}", get_session),
            web.delete("/v1/sessions/{sid}", close_session),
            web.post("/v1/sessions/{sid}/commands", send_command),
            web.get("/v1/sessions/{sid}/commands/{cid}", get_command),
            web.post("/v1/sessions/{sid}/keys", send_keys),
            web.post("/v1/sessions/{sid}/interrupt", interrupt),
            web.get("/v1/sessions/{sid}/screen", screen),
            web.post("/v1/sessions/{sid}/wait", wait_for),
            web.post("/v1/sessions/{sid}/reconnect", reconnect),
            *api_configs.routes,
            *api_files.routes,
            *api_admin.routes,
        ]
    )
    return app
