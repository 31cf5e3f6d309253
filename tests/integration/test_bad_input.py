"""Bad input on the socket: every kind is a 4xx JSON error naming the problem; the daemon lives on."""

from __future__ import annotations

import asyncio
import json

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from tests.instance import Instance
from tests.rawhttp import raw_request

NOSUCH = "nosuch-000000"

# (name, method, path, body, expected status, expected code, words the message must contain)
CASES: list[tuple[str, str, str, bytes | None, int, str, str]] = [
    ("malformed JSON", "POST", "/v1/sessions", b'{"host": ', 400, "bad_request", "not valid JSON"),
    ("trailing garbage", "POST", "/v1/sessions", b'{"host": "bash"} x', 400, "bad_request", "not valid JSON"),
    ("JSON array body", "POST", "/v1/sessions", b'["bash"]', 400, "bad_request", "must be a JSON object"),
    ("JSON string body", "POST", "/v1/sessions", b'"bash"', 400, "bad_request", "must be a JSON object"),
    ("empty body, field required", "POST", "/v1/sessions", b"", 400, "bad_request", "host: Field required"),
    ("unknown field", "POST", "/v1/sessions", b'{"host": "bash", "bogus": 1}', 400, "bad_request",
     "bogus: Extra inputs are not permitted"),
    ("unknown field on command", "POST", f"/v1/sessions/{NOSUCH}/commands",
     b'{"command": "ls", "sudo": true}', 400, "bad_request", "sudo: Extra inputs"),
    ("wrong type: command", "POST", f"/v1/sessions/{NOSUCH}/commands", b'{"command": 5}', 400,
     "bad_request", "command: Input should be a valid string"),
    ("wrong type: timeout", "POST", f"/v1/sessions/{NOSUCH}/commands",
     b'{"command": "ls", "timeout": "soon"}', 400, "bad_request", "timeout: Input should be a valid number"),
    ("wrong type: port", "POST", "/v1/sessions", b'{"host": "bash", "port": [22]}', 400, "bad_request",
     "port: Input should be a valid integer"),
    ("out of range: port", "POST", "/v1/sessions", b'{"host": "bash", "port": 70000}', 400,
     "bad_request", "port: Input should be less than or equal to 65535"),
    ("out of range: timeout", "POST", f"/v1/sessions/{NOSUCH}/commands",
     b'{"command": "ls", "timeout": -1}', 400, "bad_request", "timeout: Input should be greater than"),
    ("NaN timeout", "POST", f"/v1/sessions/{NOSUCH}/commands", b'{"command": "ls", "timeout": NaN}',
     400, "bad_request", "timeout"),
    ("oversize command (2 MB)", "POST", f"/v1/sessions/{NOSUCH}/commands",
     json.dumps({"command": "x" * 2_000_000}).encode(), 400, "bad_request",
     "command: String should have at most 262144 characters"),
    ("non-UTF-8 body", "POST", f"/v1/sessions/{NOSUCH}/commands", b'{"command": "ls \xff\xfe"}', 400,
     "bad_request", "not UTF-8"),
    ("Latin-1 body", "POST", "/v1/sessions", '{"host": "m\xfcnchen"}'.encode("latin-1"), 400,
     "bad_request", "not UTF-8"),
    ("deeply nested JSON", "POST", f"/v1/sessions/{NOSUCH}/commands", b"[" * 100_000, 400,
     "bad_request", "nested too deeply"),
    ("5000-digit integer", "POST", f"/v1/sessions/{NOSUCH}/commands",
     b'{"command": "ls", "timeout": ' + b"9" * 5000 + b"}", 400, "bad_request", "not acceptable JSON"),
    ("huge keys list", "POST", f"/v1/sessions/{NOSUCH}/keys", json.dumps({"keys": ["a"] * 100_000}).encode(),
     400, "bad_request", "keys: List should have at most 1000 items"),
    ("keys not a list", "POST", f"/v1/sessions/{NOSUCH}/keys", b'{"keys": "Enter"}', 400, "bad_request",
     "keys: Input should be a valid list"),
    ("empty keys list", "POST", f"/v1/sessions/{NOSUCH}/keys", b'{"keys": []}', 400, "bad_request",
     "keys: List should have at least 1 item"),
    ("lone surrogate in a command", "POST", "/v1/sessions/{sid}/commands", b'{"command": "echo \\ud800"}',
     400, "bad_request", "command: not valid Unicode text (it holds a lone UTF-16 surrogate"),
    ("lone low surrogate in keys", "POST", "/v1/sessions/{sid}/keys", b'{"keys": ["a\\udc00b", "Enter"]}',
     400, "bad_request", "keys.0: not valid Unicode text"),
    ("bad regex", "POST", "/v1/sessions/{sid}/wait", b'{"pattern": "(unclosed", "timeout": 0}', 400,
     "bad_request", "not a valid regular expression"),
    ("negative max_age", "POST", "/v1/sessions/cleanup", b'{"max_age_seconds": -5}', 400, "bad_request",
     "max_age_seconds: Input should be greater than or equal to 0"),
    # query parameters
    ("negative offset", "GET", "/v1/sessions/{sid}/commands/last?offset=-1", None, 400, "bad_request",
     "offset: must be between 0"),
    ("offset not a number", "GET", "/v1/sessions/{sid}/commands/last?offset=ten", None, 400, "bad_request",
     "offset: not a number"),
    ("zero limit", "GET", "/v1/sessions/{sid}/commands/last?limit=0", None, 400, "bad_request",
     "limit: must be between 1"),
    ("wait too long", "GET", "/v1/sessions/{sid}/commands/last?wait=3600", None, 400, "bad_request",
     "wait: must be between 0 and 50"),
    ("wait NaN", "GET", "/v1/sessions/{sid}/commands/last?wait=nan", None, 400, "bad_request", "wait"),
    ("negative lines", "GET", "/v1/sessions/{sid}/screen?lines=-5", None, 400, "bad_request", "lines"),
    # path-like and malformed ids, sent raw (no client normalisation)
    ("id '..' (%2e%2e)", "GET", "/v1/sessions/%2e%2e", None, 400, "bad_request", "not a valid session id"),
    ("id '../etc' (%2F)", "DELETE", "/v1/sessions/..%2Fetc", None, 400, "bad_request",
     "not a valid session id"),
    ("id '../x' on commands", "POST", "/v1/sessions/..%2fx/commands", b'{"command": "id"}', 400,
     "bad_request", "not a valid session id"),
    ("id with NUL", "GET", "/v1/sessions/a%00b", None, 400, "bad_request", "not a valid session id"),
    ("id with slash-dot path", "GET", "/v1/sessions/%2e%2e%2f%2e%2e%2fetc%2fpasswd", None, 400, "bad_request",
     "not a valid session id"),
    ("id uppercase", "GET", "/v1/sessions/WEB-1", None, 400, "bad_request", "not a valid session id"),
    ("id too long", "GET", "/v1/sessions/" + "a" * 5000, None, 400, "bad_request", "not a valid session id"),
    ("id with invalid UTF-8 escape", "GET", "/v1/sessions/%ff%fe", None, 400, "bad_request",
     "not a valid session id"),
    ("raw ../ path", "GET", "/v1/sessions/../../etc/passwd", None, 404, "not_found", "no API route"),
    ("command id path-like", "GET", "/v1/sessions/{sid}/commands/..%2F..%2Fstate.db", None, 404,
     "command_not_found", "has no command"),
    ("unknown session", "GET", f"/v1/sessions/{NOSUCH}", None, 404, "session_not_found", "no session"),
    ("unknown route", "GET", "/v1/nothing/here", None, 404, "not_found", "no API route"),
    ("wrong method", "PUT", "/v1/sessions", b"{}", 400, "bad_request", "method PUT is not allowed"),
]  # fmt: skip


def check_error(status: int, payload: object, want_status: int, want_code: str, words: str) -> None:
    assert status == want_status, payload
    assert isinstance(payload, dict) and set(payload) == {"error"}, payload
    err = payload["error"]
    assert set(err) == {"code", "message", "hint"}, err
    assert err["code"] == want_code, err
    assert words in err["message"], err
    assert err["hint"], err


async def test_bad_input_is_a_4xx_json_error(instance: Instance) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        first = await c.send_command(sid, SendCommandRequest(command="echo before"))
        assert (first.status, first.output) == ("completed", "before")
        pid = (await c.health()).pid
        failures = []
        for name, method, path, body, want_status, want_code, words in CASES:
            reply = raw_request(instance.socket, method, path.replace("{sid}", sid), body)
            try:
                check_error(reply.status, reply.json(), want_status, want_code, words)
            except (AssertionError, ValueError) as exc:
                failures.append(f"{name}: HTTP {reply.status} {reply.body[:300]!r} ({exc})")
            health = raw_request(instance.socket, "GET", "/v1/health")
            assert health.status == 200, f"daemon unhealthy after {name}: {health.body[:300]!r}"
        assert not failures, "\n".join(failures)
        # Same daemon, same session, still working.
        assert (await c.health()).pid == pid
        after = await c.send_command(sid, SendCommandRequest(command="echo after"))
        assert (after.status, after.exit_code, after.output) == ("completed", 0, "after")


async def test_body_over_the_size_limit_is_413(instance: Instance) -> None:
    from sshkeep.daemon.api.app import MAX_BODY

    body = b'{"command": "' + b"x" * (MAX_BODY + 1024) + b'"}'
    reply = raw_request(instance.socket, "POST", "/v1/sessions/nosuch-000000/commands", body)
    check_error(reply.status, reply.json(), 413, "payload_too_large", "request body larger than")
    assert instance.curl("/v1/health")[0] == 200


def test_bad_input_through_curl(instance: Instance) -> None:
    """The same kind of errors through the real curl binary, as a person would send them."""
    code, body = instance.curl("/v1/sessions", "POST", b'{"host": "bash", "extra": true}')
    check_error(code, body, 400, "bad_request", "extra: Extra inputs are not permitted")
    code, body = instance.curl("/v1/sessions", "POST", b"{not json")
    check_error(code, body, 400, "bad_request", "not valid JSON")
    code, body = instance.curl("/v1/sessions/nosuch-000000/commands", "POST", b'{"command": "\xc3\x28"}')
    check_error(code, body, 400, "bad_request", "not UTF-8")
    code, body = instance.curl("/v1/sessions/nosuch-000000/commands/c1?offset=-3")
    check_error(code, body, 400, "bad_request", "offset: must be between 0")
    assert instance.curl("/v1/health")[0] == 200


async def test_concurrent_closes_and_requests_are_never_5xx(instance: Instance) -> None:
    """DELETEs racing commands, keys, waits and reads on one id: one close wins, every loser gets a
    4xx JSON error (404 session_not_found, or 409 for a busy session), never a 5xx."""
    requests: list[tuple[str, str, bytes | None]] = [
        ("POST", "/v1/sessions/{sid}/commands", b'{"command": "sleep 0.3; echo x", "timeout": 10}'),
        ("POST", "/v1/sessions/{sid}/commands", b'{"command": "echo y", "timeout": 10}'),
        ("DELETE", "/v1/sessions/{sid}", None),
        ("POST", "/v1/sessions/{sid}/keys", b'{"keys": ["echo k", "Enter"]}'),
        ("DELETE", "/v1/sessions/{sid}", None),
        ("POST", "/v1/sessions/{sid}/wait", b'{"pattern": "never", "timeout": 5}'),
        ("GET", "/v1/sessions/{sid}/screen", None),
        ("GET", "/v1/sessions/{sid}/commands/last?wait=5", None),
        ("POST", "/v1/sessions/{sid}/interrupt", None),
    ]
    async with instance.client() as c:
        for _ in range(3):
            sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
            replies = await asyncio.gather(
                *(
                    asyncio.to_thread(raw_request, instance.socket, method, path.replace("{sid}", sid), body)
                    for method, path, body in requests
                )
            )
            closes = []
            for (method, path, _), reply in zip(requests, replies, strict=True):
                payload = reply.json()
                assert reply.status < 500, f"{method} {path}: {reply.status} {reply.body[:300]!r}"
                if reply.status >= 400:
                    assert payload["error"]["code"] in (
                        "session_not_found",
                        "session_busy",
                        "command_not_found",
                    ), payload
                if method == "DELETE":
                    closes.append(reply.status)
            assert sorted(closes) == [200, 404], closes
            assert all(s.session_id != sid for s in (await c.list_sessions()).sessions)
        assert (await c.health()).status == "ok"
