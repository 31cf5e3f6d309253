"""The MCP face, through the real MCP client: `sshkeep mcp` over stdio, driven by the MCP SDK."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters
from mcp_types import PARSE_ERROR, CallToolResult

from tests.instance import Instance
from tests.support import call, call_error, mcp_open_session

# The tools of issues 2 and 3, and what each one may do to the remote side.
READ_ONLY_TOOLS = {"list_sessions", "get_command", "wait_for", "get_snapshot"}
ACTING_TOOLS = {"send_command", "send_keys", "interrupt_command", "close_session"}
OPENING_TOOLS = {"open_session", "reconnect_session"}


def names_field(text: str, tool: str, field: str) -> bool:
    """True if the error text names `field` (not merely as part of the tool's own name)."""
    return re.search(rf"\b{field}\b", text.replace(tool, "")) is not None


async def test_tool_list_annotations_and_schemas(instance: Instance) -> None:
    async with Client(instance.mcp_params()) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    assert tools.keys() >= READ_ONLY_TOOLS | ACTING_TOOLS | OPENING_TOOLS
    for name, tool in tools.items():
        assert tool.description, name
        assert tool.annotations is not None, name
        assert tool.input_schema.get("type") == "object", name
        assert tool.output_schema is not None and tool.output_schema.get("properties"), name
    for name in READ_ONLY_TOOLS:
        ann = tools[name].annotations
        assert ann is not None and ann.read_only_hint is True and ann.destructive_hint is False, name
    for name in ACTING_TOOLS:
        ann = tools[name].annotations
        assert ann is not None and ann.read_only_hint is False and ann.destructive_hint is True, name
    for name in OPENING_TOOLS:
        ann = tools[name].annotations
        assert ann is not None and ann.read_only_hint is False, name
    # Tool parameters carry the request models' descriptions and limits.
    send = tools["send_command"].input_schema
    assert set(send["required"]) == {"command"}  # and session_id or host
    assert {"session_id", "host"} <= send["properties"].keys()
    assert send["properties"]["timeout"]["maximum"] == 600  # over 50 only with a progress token
    assert send["properties"]["command"]["description"]
    assert "status" in tools["send_command"].output_schema["properties"]  # type: ignore[index]
    assert tools["send_keys"].input_schema["properties"]["keys"]["type"] == "array"


async def test_commands_exact_results(instance: Instance) -> None:
    async with Client(instance.mcp_params()) as c:
        sid = await mcp_open_session(c)

        async def run(cmd: str, **kw: Any) -> tuple[str, int | None, str]:
            r = await call(c, "send_command", {"session_id": sid, "command": cmd, **kw})
            assert r["session_id"] == sid and r["command_id"]
            return r["status"], r["exit_code"], r["output"]

        assert await run("echo X") == ("completed", 0, "X")
        assert await run("false") == ("completed", 1, "")
        assert await run("(exit 7)") == ("completed", 7, "")
        assert await run("cd /tmp && export SK_MCP=kept") == ("completed", 0, "")
        assert await run('pwd; echo "$SK_MCP"') == ("completed", 0, "/tmp\nkept")
        # Returns once the command ends (not at the timeout) and carries its output.
        assert await run("sleep 1.2; echo slept", timeout=30) == ("completed", 0, "slept")

        # The text rendering names the status and exit code too.
        res = await c.call_tool("send_command", {"session_id": sid, "command": "echo text-form"})
        text = " ".join(getattr(x, "text", "") for x in res.content)
        assert "completed" in text and "exit=0" in text and "text-form" in text


async def test_second_shim_sees_the_same_session(instance: Instance) -> None:
    async with Client(instance.mcp_params()) as c:
        sid = await mcp_open_session(c)
        r = await call(c, "send_command", {"session_id": sid, "command": "export SK_SHIM=first"})
        assert r["status"] == "completed"
    # The first shim is gone; a new one talks to the same daemon and the same shell.
    async with Client(instance.mcp_params()) as c:
        listing = await call(c, "list_sessions")
        assert [s["session_id"] for s in listing["sessions"]] == [sid]
        assert listing["sessions"][0]["state"] == "ready"
        r = await call(c, "send_command", {"session_id": sid, "command": 'echo "$SK_SHIM"'})
        assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "first")


async def test_errors_name_the_problem_and_daemon_survives(instance: Instance) -> None:
    pid = instance.daemon_pid()
    async with Client(instance.mcp_params()) as c:
        text = await call_error(c, "send_command", {"session_id": "nope-123456", "command": "echo x"})
        assert "nope-123456" in text
        assert "list_sessions" in text or "open_session" in text  # the next step

        text = await call_error(c, "get_snapshot", {"session_id": "nope-123456"})
        assert "nope-123456" in text

        text = await call_error(c, "send_command", {"session_id": "Bad Id!", "command": "echo x"})
        assert "Bad Id!" in text

        # Malformed arguments: the error names the field.
        text = await call_error(c, "send_command", {"session_id": "x"})
        assert names_field(text, "send_command", "command"), text
        text = await call_error(c, "send_command", {"session_id": "x", "command": "echo", "timeout": 500})
        assert names_field(text, "send_command", "timeout"), text
        text = await call_error(c, "send_keys", {"session_id": "x", "keys": "Enter"})
        assert names_field(text, "send_keys", "keys"), text
        text = await call_error(c, "open_session", {"host": ""})
        assert names_field(text, "open_session", "host"), text
        text = await call_error(c, "get_command", {"session_id": "x", "command_id": "c1", "limit": 0})
        assert names_field(text, "get_command", "limit"), text

        sid = await mcp_open_session(c)
        text = await call_error(c, "get_command", {"session_id": sid, "command_id": "c999"})
        assert "c999" in text
        # The daemon is still the same process, and still works.
        r = await call(c, "send_command", {"session_id": sid, "command": "echo alive"})
        assert r["output"] == "alive"
    assert instance.daemon_pid() == pid


async def test_other_shells_through_mcp(instance: Instance) -> None:
    async with Client(instance.mcp_params()) as c:
        for shell in ("zsh", "dash", "ash"):
            info = await call(c, "open_session", {"host": shell})
            assert info["state"] == "ready" and info["shell"] == shell, info
            sid = info["session_id"]
            r = await call(c, "send_command", {"session_id": sid, "command": "echo X; (exit 3)"})
            assert (r["status"], r["exit_code"], r["output"]) == ("completed", 3, "X")
            closed = await call(c, "close_session", {"session_id": sid})
            assert closed == {"session_id": sid, "closed": True}
            listing = await call(c, "list_sessions")
            assert sid not in [s["session_id"] for s in listing["sessions"]]


async def test_unknown_arguments_are_refused_by_name(instance: Instance) -> None:
    async with Client(instance.mcp_params()) as c:
        sid = await mcp_open_session(c)
        text = await call_error(c, "send_command", {"session_id": sid, "command": "echo x", "timout": 5})
        assert "timout" in text
        tools = (await c.list_tools()).tools
        assert all(t.input_schema.get("additionalProperties") is False for t in tools)
        ok = await call(c, "send_command", {"session_id": sid, "command": "echo fine"})
        assert ok["output"] == "fine"


# Between the MCP client and `sshkeep mcp`: passes every byte, and turns the word LONE-SURROGATE into
# the JSON escape of a lone surrogate, which the Python SDK's client cannot send (a JavaScript
# host's JSON.stringify does).
RELAY = """\
import subprocess, sys
child = subprocess.Popen([sys.executable, "-m", "sshkeep", "mcp"], stdin=subprocess.PIPE)
for line in sys.stdin.buffer:
    child.stdin.write(line.replace(b"LONE-SURROGATE", b"\\\\ud800"))
    child.stdin.flush()
child.stdin.close()
sys.exit(child.wait())
"""


async def test_lone_surrogates_get_a_tool_error_through_the_real_client(
    instance: Instance, tmp_path: Path
) -> None:
    relay = tmp_path / "relay.py"
    relay.write_text(RELAY)
    params = StdioServerParameters(command=sys.executable, args=[str(relay)], env=instance.env)
    async with Client(params) as c:
        sid = await mcp_open_session(c)
        text = await call_error(c, "send_command", {"session_id": sid, "command": "echo LONE-SURROGATE"})
        assert text.startswith("[bad_request] send_command argument command: not valid Unicode text"), text
        assert "lone UTF-16 surrogate, \\ud800 at character 5" in text and "\nNext: " in text
        text = await call_error(c, "send_keys", {"session_id": sid, "keys": ["aLONE-SURROGATE", "Enter"]})
        assert text.startswith("[bad_request] send_keys argument keys.0: not valid Unicode text"), text
        # Nothing was typed, and the session and the shim still serve.
        r = await call(c, "send_command", {"session_id": sid, "command": "echo alive"})
        assert (r["status"], r["output"]) == ("completed", "alive")


def test_raw_bad_bytes_to_the_shim_get_replies(instance: Instance) -> None:
    init = (
        b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        b'"capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}\n'
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n'
    )
    call = (
        b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"send_command","arguments":%s}}\n'
    )
    lines = [
        call % (1, b'{"session_id":"nope-123456","command":"echo \\udfff"}'),
        call % (2, b'{"session_id":"nope-123456","command":"echo \xff\xfe"}'),
        b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"send_command",\n',
        call % (4, b'{"session_id":"nope-123456","command":"echo ok"}'),
    ]
    # stdin stays open until every reply came (at EOF the SDK cancels what is still running).
    with subprocess.Popen(
        [sys.executable, "-m", "sshkeep", "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        env=instance.env,
    ) as proc:  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(init + b"".join(lines))
        proc.stdin.flush()
        replies = [json.loads(proc.stdout.readline()) for _ in range(5)]
        proc.stdin.close()
        assert proc.wait(30) == 0
    by_id = {r.get("id"): r for r in replies}
    assert set(by_id) == {0, 1, 2, 3, 4}, replies

    def text(reply: dict[str, Any]) -> str:
        result = CallToolResult.model_validate(reply["result"])
        assert result.is_error
        return "".join(getattr(x, "text", "") for x in result.content)

    assert "lone UTF-16 surrogate, \\udfff at character 5" in text(by_id[1])
    assert "command: not UTF-8" in text(by_id[2]) and "\nNext: " in text(by_id[2])
    assert by_id[3]["error"]["code"] == PARSE_ERROR
    assert text(by_id[4]).startswith("[session_not_found]")  # the daemon answered the good call
