"""The OpenAPI 3.1 document of the HTTP API, built from the table of operations.

Nothing here is a hand-written schema: path parameters, query parameters, bodies and replies are
the operations' pydantic models (`sshkeep.common.operations`). A test checks that the app's
routes are exactly the table's, so the document never hides or invents a route.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from sshkeep.common.models.base import ErrorReply
from sshkeep.common.operations import OPERATIONS, Operation

REF = "#/components/schemas/{model}"


def _parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    for where, model in (("path", op.path_params), ("query", op.query)):
        if model is None:
            continue
        schema = model.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            prop = {k: v for k, v in prop.items() if k != "title"}
            description = prop.pop("description", "")
            params.append(
                {
                    "name": name,
                    "in": where,
                    "required": where == "path" or name in schema.get("required", []),
                    "description": description,
                    "schema": prop,
                }
            )
    return params


def document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document for every operation of the table."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(ErrorReply, "serialization")]
    for op in OPERATIONS.values():
        if op.reply is not None:
            wanted.append((op.reply, "serialization"))
        if op.body is not None:
            wanted.append((op.body, "validation"))
    keymap, defs = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    error = {
        "description": 'Error: `{"error": {"code", "message", "hint"}}`',
        "content": {"application/json": {"schema": keymap[(ErrorReply, "serialization")]}},
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS.values():
        operation: dict[str, Any] = {"operationId": op.id, "summary": op.summary}
        params = _parameters(op)
        if params:
            operation["parameters"] = params
        if op.body is not None:
            operation["requestBody"] = {
                # An empty body means {}: required only when the model has a required field.
                "required": any(f.is_required() for f in op.body.model_fields.values()),
                "content": {"application/json": {"schema": keymap[(op.body, "validation")]}},
            }
        if op.reply is not None:
            ok: dict[str, Any] = {
                "description": op.reply.__name__,
                "content": {"application/json": {"schema": keymap[(op.reply, "serialization")]}},
            }
        else:
            free = {"application/json": {"schema": {"type": "object"}}}
            ok = {"description": "JSON reply", "content": free}
        operation["responses"] = {str(op.status): ok, "default": error}
        paths.setdefault(op.path, {})[op.method.lower()] = operation
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
