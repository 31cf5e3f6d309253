"""The HTTP layer's leaf: the services the routes use (one app key each), request parsing, replies
and the error middleware.

Route modules import this module, never the app factory. The services are built and owned by the
composition root (daemon/server.py); a route reaches one with `manager(request)`,
`commands(request)`, `transfers(request)` or `reaper(request)`. An endpoint is declared with
`endpoint(routes, "<operation id>")`: its method, path, models and success status come from the
table of operations (`sshkeep.common.operations`); the wrapper parses the query and the body with
the operation's models and serialises the returned reply model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from aiohttp import hdrs, web
from multidict import CIMultiDict
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from sshkeep.common.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    SessionNotFound,
    SshkeepError,
    TmuxError,
)
from sshkeep.common.models.base import DiskNotice, Request
from sshkeep.common.operations import OPERATIONS, Operation
from sshkeep.common.settings import Settings
from sshkeep.daemon.api.audit import note_of
from sshkeep.daemon.api.peer import peer_of
from sshkeep.daemon.disk import DiskWatch
from sshkeep.daemon.files.local import LocalFiles
from sshkeep.daemon.files.transfers import Transfers
from sshkeep.daemon.policy.guard import Decision, Guard
from sshkeep.daemon.sessions.commands import Commands
from sshkeep.daemon.sessions.control import Control
from sshkeep.daemon.sessions.jobs import Jobs
from sshkeep.daemon.sessions.manager import SessionManager
from sshkeep.daemon.sessions.reaper import Reaper
from sshkeep.daemon.sessions.secrets import Answers

log = structlog.get_logger(__name__)

MAX_BODY = 96 * 1024 * 1024
_OWN_UID = os.getuid()  # the daemon's uid: the only one its socket serves
# structlog's context variable behind the `request_id` of log lines (bind_contextvars' own, found
# through the token it returns): set directly, per request.
_LOG_REQUEST_ID = structlog.contextvars.bind_contextvars(request_id=...)["request_id"].var
structlog.contextvars.unbind_contextvars("request_id")


@dataclass(frozen=True)
class Services:
    """What the HTTP layer is given by the composition root (which starts and stops them)."""

    manager: SessionManager
    commands: Commands
    answers: Answers
    control: Control
    jobs: Jobs
    transfers: Transfers
    local_files: LocalFiles
    reaper: Reaper
    guard: Guard
    settings: Callable[[], Settings]
    audit_log: Path
    daemon_log: Path
    disk: DiskWatch


MANAGER = web.AppKey("manager", SessionManager)
COMMANDS = web.AppKey("commands", Commands)
ANSWERS = web.AppKey("answers", Answers)
CONTROL = web.AppKey("control", Control)
JOBS = web.AppKey("jobs", Jobs)
TRANSFERS = web.AppKey("transfers", Transfers)
LOCAL_FILES = web.AppKey("local_files", LocalFiles)
REAPER = web.AppKey("reaper", Reaper)
GUARD = web.AppKey("guard", Guard)
STARTED = web.AppKey("started", float)
DISK = web.AppKey("disk", DiskWatch)

M = TypeVar("M", bound=Request)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(err: SshkeepError) -> web.Response:
    return web.json_response({"error": err.to_dict()}, status=err.status)


def _bounds(info: FieldInfo | None) -> tuple[float | None, float | None]:
    low = high = None
    for meta in info.metadata if info is not None else ():
        for attr in ("ge", "gt"):
            if getattr(meta, attr, None) is not None:
                low = getattr(meta, attr)
        for attr in ("le", "lt"):
            if getattr(meta, attr, None) is not None:
                high = getattr(meta, attr)
    return low, high


BOUND_ERRORS = frozenset(
    {"greater_than", "greater_than_equal", "less_than", "less_than_equal", "finite_number"}
)


def validation_message(exc: ValidationError, model: type[BaseModel] | None = None) -> str:
    """Pydantic's errors as one line: `field: what is wrong`. With `model` (query strings, where
    every value arrives as text), bounds are said as a range and unparsable numbers as such."""
    parts = []
    for e in exc.errors()[:5]:
        loc = ".".join(str(x) for x in e["loc"]) or "body"
        msg = e["msg"]
        info = model.model_fields.get(str(e["loc"][0])) if model is not None and e["loc"] else None
        low, high = _bounds(info)
        if model is not None and e["type"] in BOUND_ERRORS and low is not None and high is not None:
            msg = f"must be between {low:g} and {high:g}"
        elif e["type"] == "string_unicode":
            msg = "not valid Unicode text (it holds a lone UTF-16 surrogate, e.g. \\ud800)"
        elif model is not None and e["type"] in ("int_parsing", "float_parsing"):
            msg = f"not a number ({e.get('input')!r})"
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = note_of(request).request_id or request.headers.get("X-Request-Id") or os.urandom(6).hex()
    bound = _LOG_REQUEST_ID.set(rid)  # what bind_contextvars(request_id=rid) does, for a fifth
    try:
        peer = peer_of(request)
        uid = peer.uid if peer is not None else None
        if uid is not None and uid != _OWN_UID:
            log.warning("peer_refused", uid=uid)
            raise Forbidden(f"uid {uid} may not use this daemon (it belongs to uid {_OWN_UID})")
        return await handler(request)
    except SshkeepError as err:
        if err.status >= 500:
            log.warning("request_failed", path=request.path, code=err.code, error=err.message)
        notice = _disk_notice(request)
        if notice is not None:  # an error reply says it too
            err.hint = _with_notice(err.hint, notice)
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
        _LOG_REQUEST_ID.reset(bound)


def _validate(model: type[M], data: dict[str, Any], query: bool = False) -> M:
    try:
        # model_validate's own work, without its wrapper (a Python call with six keywords).
        valid: M = model.__pydantic_validator__.validate_python(data)
        return valid
    except ValidationError as exc:
        raise BadRequest(validation_message(exc, model if query else None)) from exc


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
    note_of(request).body = data  # the audit line summarises it from here
    return _validate(model, data)


def parse_query(request: web.Request, model: type[M]) -> M:
    """The query string through its model (an empty value means the default)."""
    data = {name: value for name, value in request.query.items() if value != ""}
    return _validate(model, data, query=True)


# The header aiohttp makes of content_type="application/json", charset="utf-8", made once.
_JSON_HEADERS = CIMultiDict({hdrs.CONTENT_TYPE: "application/json; charset=utf-8"})


class SentReply(web.Response):
    """A reply that lets go of its body once it is sent. aiohttp's handler of a keep-alive
    connection holds its last request and response until the next request comes: a 30 MB
    read_remote_file reply stayed in the daemon for as long as the client's connection idled."""

    async def write_eof(self, data: bytes = b"") -> None:
        await super().write_eof(data)
        self.body = None


def reply(model: BaseModel, status: int = 200) -> web.Response:
    # Serialised straight to UTF-8 bytes (model_dump_json would make a str, encoded again here).
    body = model.__pydantic_serializer__.to_json(model)
    return SentReply(body=body, status=status, headers=_JSON_HEADERS)  # the headers are copied


def with_disk_notice(request: web.Request, out: BaseModel) -> BaseModel:
    """While sshkeep's disk is full, every reply says so: in its `disk` field and its hint."""
    notice = _disk_notice(request)
    if notice is None:
        return out
    fields = type(out).model_fields
    if "disk" in fields:
        out.disk = notice  # type: ignore[attr-defined]
    if "hint" in fields:
        out.hint = _with_notice(getattr(out, "hint", None), notice)  # type: ignore[attr-defined]
    return out


def _disk_notice(request: web.Request) -> DiskNotice | None:
    disk = request.app.get(DISK)
    return disk.notice() if disk is not None else None


def _with_notice(hint: str | None, notice: DiskNotice) -> str:
    return f"{hint} {notice.message}" if hint else notice.message


def manager(request: web.Request) -> SessionManager:
    return request.app[MANAGER]


def commands(request: web.Request) -> Commands:
    return request.app[COMMANDS]


def answers(request: web.Request) -> Answers:
    return request.app[ANSWERS]


def control(request: web.Request) -> Control:
    return request.app[CONTROL]


def jobs(request: web.Request) -> Jobs:
    return request.app[JOBS]


def transfers(request: web.Request) -> Transfers:
    return request.app[TRANSFERS]


def local_files(request: web.Request) -> LocalFiles:
    return request.app[LOCAL_FILES]


def reaper(request: web.Request) -> Reaper:
    return request.app[REAPER]


def guard(request: web.Request) -> Guard:
    return request.app[GUARD]


def caller(request: web.Request) -> str:
    """Who made the request, as the audit log and approvals name them."""
    peer = peer_of(request)
    return f"uid {peer.uid} pid {peer.pid}" if peer is not None else "unknown peer"


def note_decision(request: web.Request, decision: Decision) -> None:
    """Put the guard's decision on the request's own audit line."""
    note = note_of(request)
    note.decision = decision.audit_decision
    note.policy = decision.audit_fields()


@dataclass(slots=True)
class Call:
    """A parsed request of one operation: path parameters, query and body, as the table says.
    Routes read it, never change it (not frozen: a frozen dataclass's __init__ costs a
    object.__setattr__ per field, on every request)."""

    op: Operation
    params: dict[str, str]
    query_model: Request | None
    body_model: Request | None

    @property
    def session_id(self) -> str:
        return self.params["session_id"]

    def body(self, model: type[M]) -> M:
        assert isinstance(self.body_model, model), f"{self.op.id} takes no {model.__name__} body"
        return self.body_model

    def query(self, model: type[M]) -> M:
        assert isinstance(self.query_model, model), f"{self.op.id} takes no {model.__name__} query"
        return self.query_model


Endpoint = Callable[[web.Request, Call], Awaitable[BaseModel | web.StreamResponse]]


def _closed_meanwhile(request: web.Request, call: Call) -> SessionNotFound | None:
    """The error to give when a request failed because its session was closed (or its tmux pane
    vanished) while it ran: a concurrent DELETE wins, the others learn the session is gone."""
    sid = call.params.get("session_id")
    if sid is None:
        return None
    s = manager(request).sessions.get(sid)
    if s is not None and not s.closed:
        return None
    return SessionNotFound(f"session {sid} was closed while this request ran")


def endpoint(routes: web.RouteTableDef, op_id: str) -> Callable[[Endpoint], Endpoint]:
    """Register `fn` as operation `op_id`'s route; method, path, models and status from the table."""
    op = OPERATIONS[op_id]

    def register(fn: Endpoint) -> Endpoint:
        async def handler(request: web.Request) -> web.StreamResponse:
            query = parse_query(request, op.query) if op.query is not None else None
            body = await parse_body(request, op.body) if op.body is not None else None
            call = Call(op, dict(request.match_info), query, body)
            try:
                out = await fn(request, call)
            except (TmuxError, OSError) as exc:
                gone = _closed_meanwhile(request, call)
                if gone is not None:
                    raise gone from exc
                raise
            if isinstance(out, web.StreamResponse):
                return out
            out = with_disk_notice(request, out)
            note_of(request).reply = out  # the audit line takes its result fields from the model
            return reply(out, op.status)

        handler.__name__ = op.id
        handler.__doc__ = op.summary
        routes.route(op.method, op.path)(handler)
        return fn

    return register
