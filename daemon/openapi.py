"""The OpenAPI 3.1 document of the HTTP API, built from the app's routes and the `common` models.

Nothing here is a hand-written schema: `OPERATIONS` only says which request/reply model (and
which query parameters) belong to a route; the schemas come from pydantic. A route missing from
the table is still listed, with a generic JSON reply, so the document never hides a route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from common.models import (
    COMMAND_ID_PATTERN,
    SESSION_ID_PATTERN,
    CloseResult,
    CommandResult,
    ErrorReply,
    Health,
    OpenSessionRequest,
    ReconnectRequest,
    SendCommandRequest,
    SendKeysRequest,
    SendKeysResult,
    SessionInfo,
    SessionList,
    Snapshot,
    WaitForRequest,
    WaitForResult,
)
from common.models_admin import CleanupRequest, CleanupResult
from common.models_files import (
    ExecRequest,
    ExecResult,
    ReadFileRequest,
    ReadFileResult,
    WriteFileRequest,
    WriteFileResult,
)

REF = "#/components/schemas/{model}"
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Query:
    """One query parameter of a route."""

    name: str
    type: Literal["integer", "number", "string"]
    description: str
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class Op:
    """What a route takes and gives. `tool` is the operationId: the MCP tool name where one exists."""

    tool: str
    summary: str
    reply: type[BaseModel] | None  # None: free-form JSON
    request: type[BaseModel] | None = None
    status: int = 200
    query: tuple[Query, ...] = ()


# (method, canonical path) -> operation. Route modules may add their own entries at import time.
OPERATIONS: dict[tuple[str, str], Op] = {
    ("GET", "/v1/health"): Op("health", "Daemon health, socket and session count", Health),
    ("GET", "/v1/sessions"): Op("list_sessions", "Every session with its state", SessionList),
    ("POST", "/v1/sessions"): Op(
        "open_session", "Open a persistent SSH terminal", SessionInfo, OpenSessionRequest, 201
    ),
    ("GET", "/v1/sessions/{sid}"): Op("get_session", "One session's state", SessionInfo),
    ("DELETE", "/v1/sessions/{sid}"): Op("close_session", "Close a session (kills its ssh)", CloseResult),
    ("POST", "/v1/sessions/{sid}/commands"): Op(
        "send_command", "Run a command and wait for it to end", CommandResult, SendCommandRequest
    ),
    ("GET", "/v1/sessions/{sid}/commands/{cid}"): Op(
        "get_command",
        "Status and output of a command (`last` for the latest); pages and waits",
        CommandResult,
        query=(
            Query("offset", "integer", "First output line to return", 0, 1e12),
            Query("limit", "integer", "Lines to return", 1, 100_000),
            Query("wait", "number", "Seconds to wait for the command to end", 0, 50),
        ),
    ),
    ("POST", "/v1/sessions/{sid}/keys"): Op(
        "send_keys", "Send tmux key names or literal text", SendKeysResult, SendKeysRequest
    ),
    ("POST", "/v1/sessions/{sid}/interrupt"): Op(
        "interrupt_command", "Ctrl-C the running command", CommandResult
    ),
    ("GET", "/v1/sessions/{sid}/screen"): Op(
        "get_snapshot",
        "The pane's screen (and scrollback)",
        Snapshot,
        query=(Query("lines", "integer", "Scrollback lines to include", 0, 50_000),),
    ),
    ("POST", "/v1/sessions/{sid}/wait"): Op(
        "wait_for", "Wait until output matches a pattern", WaitForResult, WaitForRequest
    ),
    ("POST", "/v1/sessions/{sid}/reconnect"): Op(
        "reconnect_session", "Start a fresh ssh in a disconnected session", SessionInfo, ReconnectRequest
    ),
    ("POST", "/v1/sessions/cleanup"): Op(
        "cleanup_dead_sessions",
        "Close disconnected sessions older than max_age_seconds",
        CleanupResult,
        CleanupRequest,
    ),
    ("POST", "/v1/sessions/{sid}/files/read"): Op(
        "read_remote_file",
        "Read (a range of) a remote file over the side channel",
        ReadFileResult,
        ReadFileRequest,
    ),
    ("POST", "/v1/sessions/{sid}/files/write"): Op(
        "write_remote_file",
        "Write or append a remote file over the side channel",
        WriteFileResult,
        WriteFileRequest,
    ),
    ("POST", "/v1/sessions/{sid}/exec"): Op(
        "exec_command", "Run a command beside the terminal (no tty, empty stdin)", ExecResult, ExecRequest
    ),
    ("GET", "/v1/openapi.json"): Op("openapi", "This document", None),
}

PATH_PARAMS: dict[str, dict[str, Any]] = {
    "sid": {"type": "string", "pattern": SESSION_ID_PATTERN, "description": "Session id"},
    "cid": {
        "type": "string",
        "pattern": "^(" + COMMAND_ID_PATTERN.strip("^$") + "|last)$",
        "description": "Command id, or `last`",
    },
}


def tool_name(method: str, canonical: str) -> str | None:
    op = OPERATIONS.get((method, canonical))
    return op.tool if op is not None else None


def _routes(app: web.Application) -> list[tuple[str, str, web.AbstractRoute]]:
    found = []
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        found.append((route.method, route.resource.canonical, route))
    return found


def _first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def document(app: web.Application, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every route of `app`."""
    routes = _routes(app)
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorReply, "serialization")]
    for method, path, _route in routes:
        op = OPERATIONS.get((method, path))
        if op is None:
            continue
        if op.reply is not None:
            wanted.append((op.reply, "serialization"))
        if op.request is not None:
            wanted.append((op.request, "validation"))
    keymap, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    error = {
        "description": 'Error: `{"error": {"code", "message", "hint"}}`',
        "content": {"application/json": {"schema": keymap[(ErrorReply, "serialization")]}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for method, path, route in routes:
        op = OPERATIONS.get((method, path))
        handler = getattr(route.handler, "__name__", "handler")
        operation: dict[str, Any] = {
            "operationId": op.tool if op else handler,
            "summary": op.summary if op else (_first_line(route.handler.__doc__) or handler),
        }
        params: list[dict[str, Any]] = [
            {
                "name": name,
                "in": "path",
                "required": True,
                "schema": PATH_PARAMS.get(name, {"type": "string"}),
            }
            for name in re.findall(r"\{(\w+)(?::[^}]*)?\}", path)
        ]
        for q in op.query if op else ():
            schema: dict[str, Any] = {"type": q.type}
            if q.minimum is not None:
                schema["minimum"] = q.minimum
            if q.maximum is not None:
                schema["maximum"] = q.maximum
            params.append(
                {
                    "name": q.name,
                    "in": "query",
                    "required": False,
                    "description": q.description,
                    "schema": schema,
                }
            )
        if params:
            operation["parameters"] = params
        if op is not None and op.request is not None:
            operation["requestBody"] = {
                # An empty body means {}: required only when the model has a required field.
                "required": any(f.is_required() for f in op.request.model_fields.values()),
                "content": {"application/json": {"schema": keymap[(op.request, "validation")]}},
            }
        if op is not None and op.reply is not None:
            ok: dict[str, Any] = {
                "description": op.reply.__name__,
                "content": {"application/json": {"schema": keymap[(op.reply, "serialization")]}},
            }
        else:
            ok = {
                "description": "JSON reply",
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        operation["responses"] = {str(op.status if op else 200): ok, "default": error}
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sshkeep daemon API",
            "version": version,
            "description": "Persistent SSH terminals over a Unix socket "
            "(curl --unix-socket <socket> http://localhost/v1/health).",
        },
        "servers": [{"url": "http://localhost"}],
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": defs.get("$defs", {})},
    }
