"""Output through the real MCP client: full output, long commands, questions, interrupts."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from sshkeep.shim.inline import INLINE_OUTPUT_CHARS
from tests.instance import Instance
from tests.support import SHELLS, call, eventually, mcp_open_session, text_of


async def run(c: Client, sid: str, command: str, timeout: float = 20) -> dict[str, Any]:
    return await call(c, "send_command", {"session_id": sid, "command": command, "timeout": timeout})


async def test_100k_lines_complete_and_page_exactly(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c)
        first = await run(c, sid, "seq 1 100000", timeout=50)
        assert (first["status"], first["exit_code"]) == ("completed", 0), first["hint"]
        assert first["total_lines"] == 100_000
        # The first reply is bounded, keeps head and tail, and says what was cut and how to page.
        assert len(first["output"]) <= 21_000
        assert first["truncated"] and "get_command" in first["truncated"]
        assert first["has_more"] is True and first["next_offset"] > 0
        shown = first["output"].splitlines()
        assert shown[:3] == ["1", "2", "3"] and shown[-1] == "100000"

        cid = first["command_id"]
        lines: list[str] = []
        offset: int | None = 0
        pages = 0
        while offset is not None:
            page = await call(
                c, "get_command", {"session_id": sid, "command_id": cid, "offset": offset, "limit": 30_000}
            )
            assert page["offset"] == offset and page["status"] == "completed"
            # Through MCP a page stops at the inline limit, before the 30000 lines asked for.
            assert len(page["output"]) <= INLINE_OUTPUT_CHARS
            lines += page["output"].split("\n")
            offset = page["next_offset"]
            assert page["has_more"] == (offset is not None)
            pages += 1
        assert pages == 5  # 588,894 characters in pages of at most 131,072 (by lines: it would be 4)
        assert lines == [str(i) for i in range(1, 100_001)]
        # The session is in step after all that output.
        r = await run(c, sid, "echo after")
        assert (r["status"], r["output"]) == ("completed", "after")


async def test_escape_codes_are_stripped(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c)
        r = await run(c, sid, r"printf '\033[1;31mred\033[0m plain\n'")
        assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "red plain")
        # A progress bar made of \r rewrites collapses to its final state.
        r = await run(c, sid, r"for i in 10 50 100; do printf '\r%s%%' $i; done; printf '\n'")
        assert r["output"] == "100%"


async def test_timeout_interrupt_and_unclosed_quote(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c)
        r = await run(c, sid, "sleep 30", timeout=1)
        assert r["status"] == "running" and r["exit_code"] is None
        assert "get_command" in r["hint"] and "interrupt_command" in r["hint"]
        cid = r["command_id"]
        listing = await call(c, "list_sessions", {})
        [mine] = [s for s in listing["sessions"] if s["session_id"] == sid]
        assert mine["state"] == "busy" and mine["running_command_id"] == cid
        # A second command while one runs is a clear error, not a mix-up.
        busy = await c.call_tool("send_command", {"session_id": sid, "command": "echo no"})
        assert busy.is_error and cid in text_of(busy)

        stopped = await call(c, "interrupt_command", {"session_id": sid})
        assert stopped["command_id"] == cid
        assert stopped["status"] == "interrupted"
        assert stopped["exit_code"] not in (None, 0)
        r = await run(c, sid, "echo next")
        assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "next")

        # An unclosed quote is a question (continuation), not a hang; Ctrl-C gets out of it.
        r = await run(c, sid, "echo 'unclosed", timeout=10)
        assert r["status"] == "waiting_input", r
        assert r["question"]["kind"] == "continuation"
        assert "interrupt_command" in r["hint"]
        stopped = await call(c, "interrupt_command", {"session_id": sid})
        assert stopped["status"] == "interrupted"
        r = await run(c, sid, "echo fine")
        assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, "fine")


@pytest.mark.parametrize("shell", [s for s in SHELLS if s != "bash"])
async def test_timeout_interrupt_and_unclosed_quote_other_shells(shared: Instance, shell: str) -> None:
    """The same through HTTP (in-process client), on the other shells."""
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        r = await c.send_command(sid, SendCommandRequest(command="sleep 30", timeout=1))
        assert r.status == "running"
        stopped = await c.interrupt_command(sid)
        assert (stopped.command_id, stopped.status) == (r.command_id, "interrupted")
        r = await c.send_command(sid, SendCommandRequest(command="echo next"))
        assert (r.status, r.exit_code, r.output) == ("completed", 0, "next")

        r = await c.send_command(sid, SendCommandRequest(command="echo 'unclosed", timeout=10))
        assert r.status == "waiting_input", r
        assert r.question is not None and r.question.kind == "continuation"
        stopped = await c.interrupt_command(sid)
        assert stopped.status == "interrupted"
        r = await c.send_command(sid, SendCommandRequest(command="echo fine"))
        assert (r.status, r.exit_code, r.output) == ("completed", 0, "fine")
        await c.close_session(sid)


async def test_confirmation_question_then_answer(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c)
        r = await run(c, sid, "read -p 'Continue? [y/N] ' a; echo got:$a", timeout=10)
        assert r["status"] == "waiting_input", r
        assert r["question"]["kind"] == "confirm"
        assert "Continue? [y/N]" in r["question"]["text"]
        assert "send_keys" in r["hint"]
        sent = await call(c, "send_keys", {"session_id": sid, "keys": ["y", "Enter"]})
        # send_keys waits for the command it answered and returns its result.
        assert sent["sent"] == 2 and sent["result"]["command_id"] == r["command_id"]
        assert sent["result"]["status"] == "completed" and "got:y" in sent["result"]["output"]
        done = await call(c, "get_command", {"session_id": sid, "command_id": r["command_id"], "wait": 5})
        assert (done["status"], done["exit_code"]) == ("completed", 0)
        assert done["output"].splitlines()[-1] == "got:y"


async def test_wait_for_output(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c)
        # While a command runs: returns on the matching line, the command still running.
        r = await run(c, sid, "for i in 1 2 3 4; do echo tick$i; sleep 0.5; done", timeout=0)
        assert r["status"] == "running"
        w = await call(c, "wait_for", {"session_id": sid, "pattern": "tick3", "timeout": 20})
        assert w["matched"] is True and w["line"] == "tick3"
        assert w["running_command_id"] == r["command_id"] and w["command_status"] == "running"
        done = await call(c, "get_command", {"session_id": sid, "command_id": r["command_id"], "wait": 20})
        assert done["output"] == "tick1\ntick2\ntick3\ntick4"

        # No match: the command ends first, and the reply says so.
        r = await run(c, sid, "sleep 0.5", timeout=0)
        w = await call(c, "wait_for", {"session_id": sid, "pattern": "never-printed", "timeout": 20})
        assert w["matched"] is False and w["command_status"] == "completed" and w["hint"]

        # A background job printing after the shell is back at its prompt.
        r = await run(c, sid, "(sleep 1.5; echo bg-done-$((6*7))) &")
        assert r["status"] == "completed"
        w = await call(c, "wait_for", {"session_id": sid, "pattern": r"bg-done-\d+", "timeout": 20})
        assert w["matched"] is True and w["line"] == "bg-done-42"


async def test_progress_notifications_while_waiting(shared: Instance) -> None:
    events: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c)
        res = await c.call_tool(
            "send_command",
            {"session_id": sid, "command": "sleep 6.5; echo finally", "timeout": 40},
            progress_callback=on_progress,
        )
        assert not res.is_error and res.structured_content is not None
        assert res.structured_content["output"] == "finally"
        assert events, "no progress notification during a 6.5 s command"
        values = [p[0] for p in events]
        assert values == sorted(values) and all(p[1] == 40 for p in events)
        assert all(p[2] and res.structured_content["command_id"] in p[2] for p in events)


async def test_git_log_needs_no_pager(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c)
        setup = (
            "d=$(mktemp -d) && cd $d && git init -q && "
            "for i in $(seq 1 30); do "
            "git -c user.name=t -c user.email=t@e commit -q --allow-empty -m c$i; done"
        )
        r = await run(c, sid, setup, timeout=40)
        assert (r["status"], r["exit_code"]) == ("completed", 0), r
        # 30 commits of 6 lines each are more than one 50-row screen: a pager would stop here.
        r = await run(c, sid, "git log", timeout=20)
        assert (r["status"], r["exit_code"]) == ("completed", 0), r
        lines = r["output"].splitlines()
        assert sum(1 for x in lines if x.startswith("commit ")) == 30
        assert lines[-1].strip() == "c1"
        r = await run(c, sid, 'cd / && rm -rf "$d"')
        assert r["exit_code"] == 0


async def _open_fullscreen(c: Client, sid: str, command: str) -> dict[str, Any]:
    r = await run(c, sid, command, timeout=10)
    assert r["status"] == "waiting_input", r
    assert r["question"]["kind"] == "fullscreen", r
    return r


async def test_fullscreen_editor_and_snapshot(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c)
        r = await run(c, sid, "f=$(mktemp) && seq 1 500 | sed 's/^/row-/' > $f")
        assert r["exit_code"] == 0
        r = await _open_fullscreen(c, sid, "vi $f")
        snap = await call(c, "get_snapshot", {"session_id": sid})
        assert snap["alternate_screen"] is True
        assert "row-1" in snap["screen"].splitlines()[0] and "row-40" in snap["screen"]
        await call(c, "send_keys", {"session_id": sid, "keys": ["Escape", ":q!", "Enter"]})
        done = await call(c, "get_command", {"session_id": sid, "command_id": r["command_id"], "wait": 10})
        assert (done["status"], done["exit_code"]) == ("completed", 0)
        r = await run(c, sid, 'rm -f "$f"; echo clean')
        assert r["output"] == "clean"


async def test_pager_on_a_long_file_is_fullscreen(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c)
        r = await run(c, sid, "f=$(mktemp) && seq 1 500 | sed 's/^/row-/' > $f")
        assert r["exit_code"] == 0
        # `less` typed on purpose waits for keys: that is a question, not a forever-running command.
        r = await _open_fullscreen(c, sid, "less $f")
        snap = await call(c, "get_snapshot", {"session_id": sid})
        assert "row-1" in snap["screen"] and "row-40" in snap["screen"]
        await call(c, "send_keys", {"session_id": sid, "keys": ["q"]})
        done = await call(c, "get_command", {"session_id": sid, "command_id": r["command_id"], "wait": 10})
        assert (done["status"], done["exit_code"]) == ("completed", 0)
        r = await run(c, sid, 'rm -f "$f"; echo clean')
        assert r["output"] == "clean"


async def test_keys_to_unknown_or_dead_session_fail_clearly(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        res = await c.call_tool("send_keys", {"session_id": "nobody-abcdef", "keys": ["Enter"]})
        assert res.is_error and "nobody-abcdef" in text_of(res) and "list_sessions" in text_of(res)

        sid = await mcp_open_session(c)
        r = await run(c, sid, "exit")
        assert r["status"] == "disconnected" and "reconnect_session" in r["hint"]

        async def listed_disconnected() -> bool:
            listing = await call(c, "list_sessions", {})
            [mine] = [s for s in listing["sessions"] if s["session_id"] == sid]
            return bool(mine["state"] == "disconnected")

        await eventually(listed_disconnected, "list_sessions to show the session disconnected")
        res = await c.call_tool("send_keys", {"session_id": sid, "keys": ["echo hi", "Enter"]})
        assert res.is_error and sid in text_of(res) and "disconnected" in text_of(res)
        res = await c.call_tool("send_command", {"session_id": sid, "command": "echo hi"})
        assert res.is_error and "reconnect_session" in text_of(res)
        closed = await call(c, "close_session", {"session_id": sid})
        assert closed["closed"] is True
