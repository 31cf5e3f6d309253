"""sshkeep.common.models: strict, bounded requests; tolerant replies; schemas that carry descriptions."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from sshkeep.common.models import base as mb
from sshkeep.common.models import sessions as m

REQUESTS: dict[type[mb.Request], dict[str, Any]] = {
    m.OpenSessionRequest: {"host": "web"},
    m.SendCommandRequest: {"command": "echo X"},
    m.SendKeysRequest: {"keys": ["y", "Enter"]},
    m.WaitForRequest: {"pattern": "done"},
    m.ReconnectRequest: {},
    m.CommandQuery: {},
    m.SnapshotQuery: {},
    m.SessionForHostRequest: {"host": "web"},
    m.SearchRequest: {"pattern": "ERROR"},
    m.AnswerSecretRequest: {"name": "sudo"},
    m.AnswerQuestionRequest: {"secret": "db"},
    m.CommandListQuery: {},
    m.InterruptRequest: {},
}


def errors_of(model: type[BaseModel], data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    return [".".join(str(x) for x in e["loc"]) for e in exc.value.errors()]


def test_every_request_model_is_listed() -> None:
    defined = {c for c in vars(m).values() if isinstance(c, type) and issubclass(c, mb.Request)} - {
        mb.Request
    }
    assert defined == set(REQUESTS)


@pytest.mark.parametrize("model", list(REQUESTS), ids=lambda c: c.__name__)
def test_requests_forbid_unknown_fields(model: type[mb.Request]) -> None:
    valid = REQUESTS[model]
    model.model_validate(valid)
    assert errors_of(model, {**valid, "surprise": 1}) == ["surprise"]


@pytest.mark.parametrize(
    ("model", "data", "field"),
    [
        (m.OpenSessionRequest, {"host": ""}, "host"),
        (m.OpenSessionRequest, {"host": "h" * 256}, "host"),
        (m.OpenSessionRequest, {"host": "web", "port": 0}, "port"),
        (m.OpenSessionRequest, {"host": "web", "port": 65536}, "port"),
        (m.OpenSessionRequest, {"host": "web", "username": ""}, "username"),
        (m.OpenSessionRequest, {"host": "web", "timeout": 0}, "timeout"),
        (m.OpenSessionRequest, {"host": "web", "timeout": 51}, "timeout"),
        (m.SendCommandRequest, {"command": ""}, "command"),
        (m.SendCommandRequest, {"command": "x" * (mb.MAX_COMMAND_CHARS + 1)}, "command"),
        (m.SendCommandRequest, {"command": "ls", "timeout": -1}, "timeout"),
        (m.SendCommandRequest, {"command": "ls", "timeout": 50.5}, "timeout"),
        (m.SendCommandRequest, {"command": "ls", "timeout": "soon"}, "timeout"),
        (m.SendCommandRequest, {"command": ["ls"]}, "command"),
        (m.SendKeysRequest, {"keys": []}, "keys"),
        (m.SendKeysRequest, {"keys": ["q"], "wait": 51}, "wait"),
        (m.SearchRequest, {"pattern": ""}, "pattern"),
        (m.SearchRequest, {"pattern": "x", "context": 21}, "context"),
        (m.SearchRequest, {"pattern": "x", "max_matches": 0}, "max_matches"),
        (m.SearchRequest, {"pattern": "x", "command_id": "c1; rm"}, "command_id"),
        (m.SendKeysRequest, {"keys": ["a"] * 1001}, "keys"),
        (m.SendKeysRequest, {"keys": "Enter"}, "keys"),
        (m.SendKeysRequest, {"keys": [1]}, "keys.0"),
        (m.WaitForRequest, {"pattern": ""}, "pattern"),
        (m.WaitForRequest, {"pattern": "x" * 2001}, "pattern"),
        (m.WaitForRequest, {"pattern": "x", "timeout": 51}, "timeout"),
        (m.ReconnectRequest, {"timeout": 0}, "timeout"),
    ],
)
def test_request_limits(model: type[BaseModel], data: dict[str, Any], field: str) -> None:
    assert errors_of(model, data) == [field]


def test_limits_accept_their_bounds() -> None:
    m.SendCommandRequest(command="x" * mb.MAX_COMMAND_CHARS, timeout=mb.MAX_WAIT_SECONDS)
    m.SendCommandRequest(command="ls", timeout=0)
    m.OpenSessionRequest(host="h" * 255, port=65535, timeout=mb.MAX_WAIT_SECONDS)
    m.SendKeysRequest(keys=["k"] * 1000)
    assert m.SendCommandRequest(command="ls").timeout == 10.0
    assert m.WaitForRequest(pattern="x").timeout == 10.0


def test_replies_ignore_unknown_fields() -> None:
    # A newer daemon may add fields; an older shim still reads the reply.
    r = m.CommandResult.model_validate(
        {"session_id": "s-1", "command_id": "c1", "status": "completed", "new_field": [1, 2]}
    )
    assert r.status == "completed" and not hasattr(r, "new_field")


def test_command_statuses_are_the_documented_ones() -> None:
    schema = m.CommandResult.model_json_schema()
    assert set(schema["properties"]["status"]["enum"]) == {
        "completed", "running", "waiting_input", "interrupted", "timed_out", "disconnected", "failed",
        "approval_required",
    }  # fmt: skip
    with pytest.raises(ValidationError):
        m.CommandResult(session_id="s", command_id="c1", status="done")  # type: ignore[arg-type]


def test_error_reply_shape() -> None:
    e = mb.ErrorReply.model_validate({"error": {"code": "session_not_found", "message": "no session 'x'"}})
    assert e.error.code == "session_not_found" and e.error.hint == ""


@pytest.mark.parametrize("model", list(REQUESTS), ids=lambda c: c.__name__)
def test_request_fields_are_described(model: type[mb.Request]) -> None:
    # These descriptions become the MCP tool parameter docs.
    for name, info in model.model_fields.items():
        assert info.description, f"{model.__name__}.{name} has no description"


def test_id_patterns() -> None:
    import re

    session = re.compile(mb.SESSION_ID_PATTERN)
    assert session.match("web-1a2b3c") and session.match("a")
    for bad in ("", "-x", "Web", "a b", "a/b", "a" * 64, "x\n"):
        assert not session.fullmatch(bad), bad
    command = re.compile(mb.COMMAND_ID_PATTERN)
    assert command.match("c1") and command.match("c123456789")
    assert not command.match("c") and not command.match("1") and not command.match("c1234567890")
