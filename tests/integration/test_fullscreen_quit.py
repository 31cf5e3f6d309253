"""Full-screen programs per shell: while they run the reply is their screen; once they quit, the
command's output holds nothing of their screens (vim's status line, less's page, top's frames)."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.instance import Instance
from tests.support import SHELLS, call, mcp_open_session, text_of

# (command, keys that quit it, a text its screen shows)
PROGRAMS = (
    ("vim $f", [":q", "Enter"], "row-1"),
    ("less $f", ["q"], "row-1"),
    ("top", ["q"], "load average"),
)
ROWS = "f=$(mktemp); seq 1 500 | sed 's/^/row-/' > $f"


async def _run(c: Client, sid: str, command: str) -> dict[str, Any]:
    return await call(c, "send_command", {"session_id": sid, "command": command})


@pytest.mark.parametrize("shell", SHELLS)
async def test_fullscreen_program_leaves_no_screen_in_the_output(shared: Instance, shell: str) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c, shell)
        r = await _run(c, sid, ROWS)
        assert (r["status"], r["exit_code"]) == ("completed", 0), r
        for command, keys, seen in PROGRAMS:
            res = await c.call_tool("send_command", {"session_id": sid, "command": command, "timeout": 8})
            assert res.structured_content is not None, text_of(res)
            r = res.structured_content
            assert r["status"] == "waiting_input" and r["question"]["kind"] == "fullscreen", (command, r)
            # The reply is the rendered screen (carried in the text: `in_text`), not the frames.
            assert r["in_text"] == ["screen"] and seen in text_of(res), (command, text_of(res))
            assert r["output"] == "", (command, r)
            cid = r["command_id"]
            done = (await call(c, "send_keys", {"session_id": sid, "keys": keys}))["result"]
            if done["status"] != "completed":
                done = await call(c, "get_command", {"session_id": sid, "command_id": cid, "wait": 10})
            assert (done["status"], done["exit_code"], done["output"]) == ("completed", 0, ""), done
            # The whole output, read afresh, is empty too: nothing of the screen was left in it.
            full = await call(c, "get_command", {"session_id": sid, "command_id": cid})
            assert (full["output"], full["total_lines"]) == ("", 0), (command, full)
            after = await _run(c, sid, "echo after")
            assert (after["output"], after["exit_code"]) == ("after", 0), (command, after)
        await _run(c, sid, 'rm -f "$f"')
        await call(c, "close_session", {"session_id": sid})
