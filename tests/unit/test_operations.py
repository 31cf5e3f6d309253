"""The table of operations is the one source: routes, OpenAPI, client, audit and MCP tools agree.

Each check is a function returning the disagreements, so a test can also show that it catches a
route or a tool added by hand without a row in the table.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
from aiohttp import web
from mcp.server import MCPServer

from sshkeep import __version__
from sshkeep.common.client import ApiClient
from sshkeep.common.models.sessions import SendCommandRequest, SendKeysRequest
from sshkeep.common.operations import BY_ROUTE, OPERATIONS
from sshkeep.common.paths import Paths
from sshkeep.daemon.api.openapi import document
from sshkeep.shim.mcp_server import build_server
from sshkeep.shim.tools_base import ANNOTATIONS, HOST_OPERATION, LONG_WAIT_FIELDS

# Keys lean_input leaves out, and of which field (None: any): minLength 1 everywhere, the
# terminal name's pattern, the session id's maxLength (its pattern bounds the length).
LEAN_DROPS: dict[str, str | None] = {"minLength": None, "pattern": "terminal", "maxLength": "session_id"}

# Operations the API client does not offer: the askpass helper speaks raw HTTP (it must start
# fast, without aiohttp), and nothing reads the OpenAPI document through the client.
NOT_IN_CLIENT = {"askpass", "openapi"}


@pytest.fixture
def server(paths: Paths) -> MCPServer[Any]:
    return build_server(paths, ApiClient(paths.socket))


def route_disagreements(app: web.Application) -> list[str]:
    routes = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method not in ("HEAD", "*") and r.resource is not None
    }
    out = [f"route {m} {p} has no row in the table" for m, p in sorted(routes - BY_ROUTE.keys())]
    out += [f"row {BY_ROUTE[k].id} has no route" for k in sorted(BY_ROUTE.keys() - routes)]
    for r in app.router.routes():
        op = BY_ROUTE.get((r.method, r.resource.canonical)) if r.resource is not None else None
        if op is not None and getattr(r.handler, "__name__", "") != op.id:
            out.append(f"route of {op.id} was not added through endpoint()")
    return out


def tool_disagreements(server: MCPServer[Any]) -> list[str]:
    tools = {t.name: t for t in server._tool_manager.list_tools()}
    wanted = {op.id for op in OPERATIONS.values() if op.tool is not None}
    out = [f"tool {n} has no row in the table" for n in sorted(tools.keys() - wanted)]
    out += [f"row {n} has no tool" for n in sorted(wanted - tools.keys())]
    for name in sorted(tools.keys() & wanted):
        op, t = OPERATIONS[name], tools[name]
        assert op.tool is not None
        if t.annotations != ANNOTATIONS[op.tool]:
            out.append(f"tool {name}'s annotations differ from the table's {op.tool!r}")
        fields: dict[str, Any] = {}
        for model in (op.path_params, op.query, op.body):
            if model is not None:
                fields.update(model.model_json_schema().get("properties", {}))
        host_body = OPERATIONS[HOST_OPERATION].body
        assert host_body is not None
        host_field = host_body.model_json_schema()["properties"]["host"]
        for arg, schema in t.parameters.get("properties", {}).items():
            if arg == "host" and arg not in fields:
                fields[arg] = host_field  # `host` in place of session_id, from its own operation
            if arg not in fields:
                out.append(f"tool {name} takes {arg!r}, which its operation's models do not have")
                continue
            for key in ("description", "pattern", "minimum", "maximum", "maxLength", "minLength"):
                if (name, arg) in LONG_WAIT_FIELDS and key in ("description", "maximum"):
                    continue  # the MCP bound of a long wait (see shim.tools_base.LONG_WAIT_FIELDS)
                if key not in schema and key in LEAN_DROPS and LEAN_DROPS[key] in (None, arg):
                    continue  # left out of the MCP schema on purpose (shim.tools_base.lean_input)
                if fields[arg].get(key) != schema.get(key) and not _nullable_match(fields[arg], schema, key):
                    out.append(
                        f"tool {name}.{arg}: {key} {schema.get(key)!r} != model's {fields[arg].get(key)!r}"
                    )
    return out


def _nullable_match(model_schema: dict[str, Any], tool_schema: dict[str, Any], key: str) -> bool:
    """`int | None` fields nest their bounds in anyOf; compare the non-null branch."""

    def inner(s: dict[str, Any]) -> Any:
        for branch in s.get("anyOf", []):
            if branch.get("type") != "null" and key in branch:
                return branch[key]
        return s.get(key)

    return bool(inner(model_schema) == inner(tool_schema))


def test_routes_are_the_table(app: web.Application) -> None:
    assert route_disagreements(app) == []


def test_a_route_added_by_hand_is_caught(app: web.Application) -> None:
    async def extra(request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/v1/extra", extra)
    assert route_disagreements(app) == ["route GET /v1/extra has no row in the table"]


def test_openapi_is_the_table() -> None:
    doc = document(__version__)
    documented = {
        (m.upper(), p): op["operationId"] for p, ops in doc["paths"].items() for m, op in ops.items()
    }
    assert documented == {k: op.id for k, op in BY_ROUTE.items()}
    assert doc["info"]["version"] == __version__


def test_tools_are_the_table(server: MCPServer[Any]) -> None:
    assert tool_disagreements(server) == []


def test_a_tool_added_by_hand_is_caught(server: MCPServer[Any]) -> None:
    @server.tool()
    async def rogue(session_id: str) -> str:
        return session_id

    assert tool_disagreements(server) == ["tool rogue has no row in the table"]


def test_every_session_id_parameter_has_its_pattern_and_bounds(server: MCPServer[Any]) -> None:
    for t in server._tool_manager.list_tools():
        sid = t.parameters.get("properties", {}).get("session_id")
        if sid is not None:
            typed = sid if "pattern" in sid else next(x for x in sid.get("anyOf", []) if "pattern" in x)
            assert typed["pattern"] == "^[a-z0-9][a-z0-9-]{0,62}$", t.name  # at most 63 characters
            assert sid["description"], t.name


def test_client_has_one_typed_method_per_operation() -> None:
    for op in OPERATIONS.values():
        if op.id in NOT_IN_CLIENT:
            continue
        method = getattr(ApiClient, op.id, None)
        assert method is not None, f"ApiClient has no method {op.id}"
        hints = typing.get_type_hints(method)
        assert hints["return"] is op.reply, f"ApiClient.{op.id} returns {hints['return']}, not {op.reply}"
        params = set(inspect.signature(method).parameters) - {"self"}
        wanted = set(op.path_params.model_fields) if op.path_params is not None else set()
        assert wanted <= params, f"ApiClient.{op.id} lacks path parameters {wanted - params}"


def test_audit_names_come_from_the_table() -> None:
    from sshkeep.daemon.api import audit

    assert audit._tool("POST", "/v1/sessions/{session_id}/commands") == "send_command"
    assert audit._tool("POST", "/v1/nowhere") is None
    assert {op.id for op in OPERATIONS.values() if op.tool} <= {op.id for op in BY_ROUTE.values()}


def test_table_paths_use_model_fields_as_placeholders() -> None:
    import re

    for op in OPERATIONS.values():
        names = set(re.findall(r"\{(\w+)\}", op.path))
        have = set(op.path_params.model_fields) if op.path_params is not None else set()
        assert names == have, f"{op.id}: path placeholders {names} != path model fields {have}"


def test_only_reads_and_keyed_commands_are_repeated_after_the_daemon_went_away() -> None:
    assert OPERATIONS["get_command"].repeatable() and OPERATIONS["wait_for"].repeatable()
    assert OPERATIONS["session_for_host"].repeatable()
    assert OPERATIONS["send_command"].repeatable(SendCommandRequest(command="ls", request_id="k" * 16))
    assert not OPERATIONS["send_command"].repeatable(SendCommandRequest(command="ls"))
    assert not OPERATIONS["send_keys"].repeatable(SendKeysRequest(keys=["y"]))
    assert not OPERATIONS["start_job"].repeatable() and not OPERATIONS["close_session"].repeatable()
