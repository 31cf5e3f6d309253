"""Daemon and shim lifecycle: one daemon per socket, a shim that ends with its stdin, dead sessions."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from mcp import Client

from sshkeep.common.errors import DaemonUnavailable, SessionDisconnected
from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from tests.instance import Instance
from tests.support import call, eventually, mcp_open_session


def test_second_daemon_refuses_clearly(instance: Instance) -> None:
    pid = instance.daemon_pid()
    second = instance.cli("daemon")
    assert second.returncode == 1
    assert "already serves" in second.stderr and str(instance.socket) in second.stderr
    assert instance.daemon_pid() == pid  # the first one is untouched
    code, body = instance.curl("/v1/health")
    assert code == 200 and body["status"] == "ok"


def test_shim_exits_promptly_when_stdin_closes(idle_instance: Instance) -> None:
    shim = subprocess.Popen(
        [sys.executable, "-m", "sshkeep", "mcp"],
        env=idle_instance.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert shim.stdin is not None
    time.sleep(0.5)  # let it reach its read loop
    shim.stdin.close()
    assert shim.wait(timeout=15) == 0


async def test_dead_session_reports_exit_status_and_refuses_commands(instance: Instance) -> None:
    async with instance.client() as c:
        info = await c.open_session(OpenSessionRequest(host="bash"))
        sid = info.session_id
        instance.kill_ssh(sid)

        async def reported_dead() -> bool:
            info = await c.get_session(sid)
            return info.state == "disconnected" and info.exit_status is not None

        await eventually(reported_dead, "the session to report its ssh's exit status")
        # The API's SessionDisconnected, rebuilt client side.
        with pytest.raises(SessionDisconnected) as refused:
            await c.send_command(sid, SendCommandRequest(command="echo hi"))
        assert "reconnect_session" in refused.value.hint


async def test_wait_for_spans_chunks_with_progress(instance: Instance) -> None:
    events: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append(progress)

    async with Client(instance.mcp_params()) as c:
        sid = await mcp_open_session(c)
        started = await call(c, "send_command", {"session_id": sid, "command": "(sleep 7; echo late-line) &"})
        assert started["status"] == "completed"
        wait = {"session_id": sid, "pattern": "late-l.ne", "timeout": 30}
        res = await call(c, "wait_for", wait, progress_callback=on_progress)
        assert res["matched"] is True
        assert res["line"] == "late-line"
        assert events, "no progress notification during a 7 s wait"


async def test_shim_starts_the_daemon_before_the_first_tool_call(idle_instance: Instance) -> None:
    """The daemon's start-up overlaps the MCP handshake instead of delaying the first tool call."""
    async with Client(idle_instance.mcp_params()), idle_instance.client() as c:

        async def answers() -> bool:
            try:
                return (await c.health()).status == "ok"
            except DaemonUnavailable:
                return False

        # No tool has been called: the shim started the daemon on its own.
        await eventually(answers, "the daemon the shim started while initialising", timeout=10)
