"""The shim's stdio on the event loop: the SDK's server over pipes, stray output kept off the wire."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client, StdioServerParameters

from tests.instance import clean_env

SERVER = """\
import asyncio, os, subprocess, sys
from mcp.server import MCPServer
from sshkeep.shim.mcp_server import serve_stdio

server = MCPServer("t")


@server.tool()
async def shout(text: str) -> str:
    print("stray print on stdout")  # fd 1 is stderr while serving
    subprocess.run(["echo", "a child's stdout"], check=True)
    return text.upper() + "!" * len(sys.argv)


@server.tool()
async def big(n: int) -> str:
    return "x" * n


@server.tool()
async def threads() -> int:
    import threading

    return threading.active_count()


asyncio.run(serve_stdio(server))
"""


@pytest.fixture
def params(tmp_path: Path) -> StdioServerParameters:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    return StdioServerParameters(command=sys.executable, args=[str(script)], env=clean_env())


async def test_tools_answer_over_pipes_and_stray_output_stays_off_the_wire(
    params: StdioServerParameters,
) -> None:
    async with Client(params) as c:
        for i in range(20):  # many round trips, each answered in order
            res = await c.call_tool("shout", {"text": f"hi{i}"})
            assert not res.is_error
            assert [getattr(x, "text", None) for x in res.content] == [f"HI{i}!"]
        res = await c.call_tool("big", {"n": 3_000_000})  # a reply far larger than a pipe's buffer
        assert getattr(res.content[0], "text", "") == "x" * 3_000_000
        text = "é" * 100_000 + "\u2028"  # a long line, non-ASCII, a JSON-legal line separator
        res = await c.call_tool("shout", {"text": text})
        assert getattr(res.content[0], "text", "") == text.upper() + "!"
        # No worker thread reads or writes the pipes (the SDK's own transport starts some).
        res = await c.call_tool("threads", {})
        assert getattr(res.content[0], "text", "") == "1"


INIT = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}\n'
    b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
)
CALL = (
    b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"shout","arguments":{"text":"%s"}}}\n'
)


def raw_session(script: Path, lines: list[bytes], replies: int) -> dict[object, dict[str, Any]]:
    """The first `replies` replies, by id, to `lines` written as raw bytes to the server's stdin after
    initialize (stdin stays open until they came: at EOF the SDK cancels what still runs)."""
    with subprocess.Popen(
        [sys.executable, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=clean_env()
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(INIT + b"".join(lines))
        proc.stdin.flush()
        got = [json.loads(proc.stdout.readline()) for _ in range(replies)]
        proc.stdin.close()
        assert proc.stdout.read() == b""  # nothing more: a notification is never answered
        assert proc.wait(30) == 0
    for reply in got:  # every reply is a message the SDK's own models accept
        types.jsonrpc_message_adapter.validate_python(reply)
    return {r.get("id"): r for r in got}


def tool_error(reply: dict[str, Any]) -> str:
    result = types.CallToolResult.model_validate(reply["result"])
    assert result.is_error
    text = "".join(getattr(c, "text", "") for c in result.content)
    assert text.startswith("[bad_request] ") and "\nNext: " in text
    return text


def test_every_bad_line_gets_a_reply_naming_the_problem(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    by_id = raw_session(
        script,
        [
            CALL % (1, b"\\ud800"),  # valid JSON, not Unicode text: a lone high surrogate
            CALL % (2, b"ab\\udc00"),  # a lone low surrogate
            CALL % (3, b"\xed\xa0\x80"),  # a surrogate encoded as UTF-8: not UTF-8
            CALL % (4, b"caf\xe9"),  # Latin-1
            CALL % (5, b"\\ud83d\\ude00"),  # a valid surrogate pair: answered normally
            b'{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"shout",\n',  # cut short
            b"not json at all\n",
            b'{"jsonrpc":"2.0","id":"s7"}\n',  # JSON, but neither request nor response
            b'{"jsonrpc":"2.0","id":8,"method":"ping","params":{"x":"\\ud800"}}\n',  # not a tool call
            b"\n",  # blank lines are skipped
            b'{"jsonrpc":"2.0","method":"notifications/x","params":{"a":"\\ud800"}}\n',  # no id: no reply
            CALL % (9, b"still serving"),
        ],
        replies=11,
    )
    one = tool_error(by_id[1])
    assert (
        "shout argument text: not valid Unicode text" in one and "surrogate, \\ud800 at character 0)" in one
    )
    assert "lone UTF-16 surrogate, \\udc00 at character 2)" in tool_error(by_id[2])
    assert "not UTF-8 (byte " in tool_error(by_id[3]) and "not UTF-8" in tool_error(by_id[4])
    ok = types.CallToolResult.model_validate(by_id[5]["result"])
    assert not ok.is_error and getattr(ok.content[0], "text", "") == "\U0001f600".upper() + "!"
    assert by_id[6]["error"]["code"] == types.PARSE_ERROR and "not JSON" in by_id[6]["error"]["message"]
    assert by_id[None]["error"]["code"] == types.PARSE_ERROR  # "not json at all": no id to recover
    assert by_id["s7"]["error"]["code"] == types.INVALID_REQUEST
    assert "Next: " in by_id["s7"]["error"]["message"]
    assert by_id[8]["error"]["code"] == types.INVALID_PARAMS
    assert (
        "params.x: not valid Unicode text (it holds a lone UTF-16 surrogate" in by_id[8]["error"]["message"]
    )
    nine = types.CallToolResult.model_validate(by_id[9]["result"])
    assert getattr(nine.content[0], "text", "") == "STILL SERVING!"
    assert set(by_id) == {0, 1, 2, 3, 4, 5, 6, None, "s7", 8, 9}


def _union(line: bytes) -> tuple[str, dict[str, Any], set[str]] | None:
    try:
        msg = types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    except ValueError:
        return None
    return type(msg).__name__, msg.model_dump(), msg.model_fields_set


def _ours(line: bytes) -> tuple[str, dict[str, Any], set[str]] | None:
    from sshkeep.shim.stdio import parse_message

    try:
        msg = parse_message(line)
    except ValueError:
        return None
    return type(msg).__name__, msg.model_dump(), msg.model_fields_set


def test_a_line_parses_to_the_message_the_sdks_union_makes() -> None:
    """The request fast path never picks another member than the SDK's union, nor accepts what
    it refuses: every mix of the members' keys, with good and bad values, in both key orders."""
    import itertools

    values: dict[str, list[Any]] = {
        "jsonrpc": ["2.0", "1.0", 2.0],
        "id": [7, "a", "7", 1.5, 7.0, True, None, 2**70],
        "method": ["tools/call", 3],
        "params": [{"name": "x", "arguments": {"result": 1}}, [], None],
        "result": [{}, 1],
        "error": [{"code": 1, "message": "m"}, {}],
    }
    keys = list(values)
    seen: set[str] = set()
    for mask in range(1, 1 << len(keys)):
        present = [k for i, k in enumerate(keys) if mask >> i & 1]
        for order in (present, present[::-1]):
            for combo in itertools.product(*(values[k] for k in order)):
                line = json.dumps(dict(zip(order, combo, strict=True))).encode()
                expected = _union(line)
                assert _ours(line) == expected, line
                seen.add(expected[0] if expected else "refused")
    for line in (
        b"",
        b"{",
        b"[]",
        b'{"id": 1, "method": "x"',
        b'{"jsonrpc":"2.0","id":1,"method":"\\ud800"}',
    ):
        assert _ours(line) is None and _union(line) is None, line
    assert seen == {"JSONRPCRequest", "JSONRPCNotification", "JSONRPCResponse", "JSONRPCError", "refused"}
