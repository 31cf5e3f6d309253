"""Fuzz the running daemon: random paths, query strings and bodies on every route of its OpenAPI
document. Never a 5xx, every error in the API's JSON shape, and the daemon stays healthy."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from tests.instance import Instance
from tests.rawhttp import raw_request

NASTY_IDS = [
    "..", "../x", "../../etc/passwd", ".", "", " ", "%2e%2e", "a/b", "a\x00b", "ABC", "-rf", "a" * 300,
    "last", "c0", "c999999999", "c-1", "cleanup", "\u202e", "\ud7ff", "💥", "$(id)", "`id`", "a;b", "*",
]  # fmt: skip

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)


def body_for(schema: dict[str, Any] | None, components: dict[str, Any]) -> st.SearchStrategy[bytes | None]:
    """Raw bytes, arbitrary JSON, or an object with the model's field names and random values."""
    choices: list[st.SearchStrategy[bytes | None]] = [
        st.none(),
        st.binary(max_size=200),
        json_value.map(lambda v: json.dumps(v).encode()),
    ]
    if schema is not None:
        model = components[schema["$ref"].rsplit("/", 1)[1]]
        names = list(model.get("properties", {}))
        if names:
            fields = st.dictionaries(
                st.sampled_from([*names, "unexpected"]), json_value, max_size=len(names) + 1
            )
            choices.append(fields.map(lambda d: json.dumps(d).encode()))
    return st.one_of(*choices)


def operations(doc: dict[str, Any]) -> list[dict[str, Any]]:
    ops = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            ops.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "params": [p["name"] for p in op.get("parameters", []) if p["in"] == "path"],
                    "query": [p["name"] for p in op.get("parameters", []) if p["in"] == "query"],
                    "body": body,
                }
            )
    return ops


async def test_fuzz_every_route(instance: Instance) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        done = await c.send_command(sid, SendCommandRequest(command="echo fuzz-ready"))
        assert done.output == "fuzz-ready"
        pid = (await c.health()).pid
    doc = raw_request(instance.socket, "GET", "/v1/openapi.json").json()
    ops = operations(doc)
    components = doc["components"]["schemas"]
    assert len(ops) >= 13
    seen: dict[str, set[int]] = {}

    def strategy_for(op: dict[str, Any]) -> st.SearchStrategy[tuple[str, str, bytes | None]]:
        # The live session only where a random request cannot act on it (GET); acting routes get
        # ids that do not exist, so the fuzz never types random text into a real shell or opens
        # ssh connections to random hosts.
        ids = st.sampled_from(NASTY_IDS) | st.text(max_size=20) | st.just("nosuch-000000")
        if op["method"] == "GET":
            ids = ids | st.just(sid)
        cids = st.sampled_from(["last", "c1", "c2", *NASTY_IDS]) | st.text(max_size=12)
        query = st.dictionaries(
            st.sampled_from([*op["query"], "x", ""]),
            st.text(max_size=12)
            | st.integers(-(10**15), 10**15).map(str)
            | st.sampled_from(["nan", "inf", "-inf", "1e309", "0", "-0", "0x10", "", "50", "50.0001"]),
            max_size=3,
        )
        body = st.none() if op["method"] == "GET" else body_for(op["body"], components)
        if op["method"] == "POST" and op["path"] == "/v1/sessions":
            body = st.one_of(st.binary(max_size=100), json_value.map(lambda v: json.dumps(v).encode()))
        if op["method"] == "GET" and "cid" in op["params"]:
            # no `wait`: a random one would only make the fuzz slow
            names = st.sampled_from([q for q in op["query"] if q != "wait"] + ["x"])
            query = st.dictionaries(names, st.text(max_size=8) | st.integers(-5, 10**6).map(str), max_size=3)

        @st.composite
        def build(draw: st.DrawFn) -> tuple[str, str, bytes | None]:
            path = op["path"]
            for name in op["params"]:
                value = draw(cids if name == "cid" else ids)
                path = path.replace("{" + name + "}", urllib.parse.quote(value, safe=""))
            q = draw(query)
            if q:
                path += "?" + urllib.parse.urlencode(q)
            return op["method"], path, draw(body)

        return build()

    @settings(
        max_examples=1000,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.sampled_from(ops).flatmap(strategy_for))
    def fuzz(req: tuple[str, str, bytes | None]) -> None:
        method, path, body = req
        reply = raw_request(instance.socket, method, path, body)
        seen.setdefault(f"{method} {path.split('?')[0]}", set()).add(reply.status)
        assert reply.status < 500, (method, path, body, reply.status, reply.body[:500])
        payload = reply.json()
        if reply.status >= 400:
            assert set(payload) == {"error"}, payload
            assert set(payload["error"]) == {"code", "message", "hint"}, payload
            assert payload["error"]["message"], payload

    fuzz()
    assert raw_request(instance.socket, "GET", "/v1/health").json()["pid"] == pid
    statuses = {s for codes in seen.values() for s in codes}
    assert 400 in statuses and 404 in statuses and 200 in statuses, seen
    async with instance.client() as c:
        after = await c.send_command(sid, SendCommandRequest(command="echo survived"))
        assert (after.status, after.exit_code, after.output) == ("completed", 0, "survived")
