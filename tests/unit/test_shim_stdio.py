"""The shim's stdio on the event loop: the SDK's server over pipes, stray output kept off the wire."""

from __future__ import annotations

import sys
from pathlib import Path

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
