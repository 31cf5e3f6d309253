"""The OpenAPI document: every route of the real app is in it, with schemas from the models."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from aiohttp import web

from sshkeep import __version__ as VERSION
from sshkeep.common.operations import BY_ROUTE
from sshkeep.daemon.api.openapi import document


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def component(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    # A root holding `components`, so every "#/components/schemas/..." ref resolves.
    return {"$ref": ref, "components": doc["components"]}


def test_every_route_is_documented_from_the_table(app: web.Application) -> None:
    doc = document(VERSION)
    assert doc["openapi"] == "3.1.0"
    routes = {
        (r.method, r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == routes
    missing = sorted(routes - BY_ROUTE.keys())
    assert not missing, f"routes without a row in sshkeep.common.operations.OPERATIONS: {missing}"
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert {"send_command", "get_command", "open_session", "cleanup_dead_sessions"} <= set(ids)


def test_refs_resolve_and_schemas_are_valid_json_schema(app: web.Application) -> None:
    doc = document(VERSION)
    schemas = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for name, schema in schemas.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert schema.get("type") == "object", name


def test_path_parameters_and_query_are_described(app: web.Application) -> None:
    doc = document(VERSION)
    op = doc["paths"]["/v1/sessions/{session_id}/commands/{command_id}"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    sid = params["session_id"]
    assert sid["in"] == "path" and sid["required"] and sid["schema"]["pattern"].startswith("^[a-z0-9]")
    assert params["command_id"]["schema"]["pattern"].endswith("|last)$")
    assert all(p["description"] for p in op["parameters"])
    assert params["offset"]["in"] == "query" and params["offset"]["schema"]["minimum"] == 0
    assert params["wait"]["schema"]["maximum"] == 50
    assert set(op["responses"]) == {"200", "default"}
    assert doc["paths"]["/v1/sessions"]["post"]["responses"]["201"]


def test_request_schemas_match_what_the_daemon_accepts(app: web.Application) -> None:
    doc = document(VERSION)
    body = doc["paths"]["/v1/sessions/{session_id}/commands"]["post"]["requestBody"]
    assert body["required"] is True
    schema = component(doc, body["content"]["application/json"]["schema"]["$ref"])
    jsonschema.validate({"command": "ls", "timeout": 5}, schema)
    for bad in (
        {"command": "ls", "extra": 1},
        {"command": 5},
        {"timeout": 1},
        {"command": "ls", "timeout": 99},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    cleanup = doc["paths"]["/v1/sessions/cleanup"]["post"]["requestBody"]
    assert cleanup["required"] is False  # every field has a default: an empty body works


def test_replies_validate_against_their_schema(app: web.Application) -> None:
    from sshkeep.common.models.sessions import CommandResult

    doc = document(VERSION)
    ok = doc["paths"]["/v1/sessions/{session_id}/commands"]["post"]["responses"]["200"]
    schema = component(doc, ok["content"]["application/json"]["schema"]["$ref"])
    sample = CommandResult(session_id="s-1", command_id="c1", status="completed", exit_code=0, output="x")
    jsonschema.validate(sample.model_dump(mode="json"), schema)
    err = doc["paths"]["/v1/health"]["get"]["responses"]["default"]
    error_schema = component(doc, err["content"]["application/json"]["schema"]["$ref"])
    jsonschema.validate({"error": {"code": "bad_request", "message": "m", "hint": "h"}}, error_schema)
