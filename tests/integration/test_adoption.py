"""Sessions and running commands outlive the daemon: kill -9, restart, adopt."""

from __future__ import annotations

import asyncio
import signal

from mcp import Client

from sshkeep.common.models.sessions import CommandQuery, OpenSessionRequest, SendCommandRequest
from tests.instance import Instance
from tests.support import call


async def test_kill_9_mid_command_loses_nothing(instance: Instance) -> None:
    async with instance.client() as c:
        info = await c.open_session(OpenSessionRequest(host="bash"))
        sid = info.session_id
        first = await c.send_command(sid, SendCommandRequest(command="echo before"))
        assert first.output == "before"
        running = await c.send_command(
            sid, SendCommandRequest(command="sleep 3; echo after-crash", timeout=0.5)
        )
        assert running.status == "running"
        cid = running.command_id
    tmux_pid = instance.tmux_server_pid()

    instance.stop(signal.SIGKILL)

    # The next shim call finds no daemon, starts one, and that daemon adopts the session.
    async with Client(instance.mcp_params()) as mcp:
        listed = await call(mcp, "list_sessions")
        ids = [s["session_id"] for s in listed["sessions"]]
        assert sid in ids
        res = await call(mcp, "get_command", {"session_id": sid, "command_id": cid, "wait": 20})
        assert (res["status"], res["exit_code"], res["output"]) == ("completed", 0, "after-crash")
        again = await call(mcp, "send_command", {"session_id": sid, "command": "echo still-here"})
        assert again["output"] == "still-here"
        old = await call(mcp, "get_command", {"session_id": sid, "command_id": first.command_id})
        assert old["output"] == "before"
    assert instance.tmux_server_pid() == tmux_pid
    # The session is still the same tmux session, with its ssh pane alive.
    server = instance.tmux_server()
    session = server.sessions.get(session_name=sid)
    assert session is not None
    assert session.active_pane is not None and session.active_pane.pane_dead != "1"


async def test_command_finishing_while_daemon_down_is_settled(instance: Instance) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="dash"))).session_id
        running = await c.send_command(
            sid, SendCommandRequest(command="sleep 1; echo done; (exit 3)", timeout=0.2)
        )
        assert running.status == "running"
    instance.stop(signal.SIGTERM)
    # Let the command end while no daemon watches.
    await asyncio.sleep(2)
    instance.start()
    async with instance.client() as c:
        res = await c.get_command(sid, running.command_id, CommandQuery(wait=10))
        assert (res.status, res.exit_code, res.output) == ("completed", 3, "done")
        info = await c.get_session(sid)
        assert info.state == "ready"
