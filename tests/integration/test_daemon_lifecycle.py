"""Daemon and shim lifecycle: one daemon per socket, a shim that ends with its stdin, dead sessions."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

from mcp import Client

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from tests.instance import Instance


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
        pane_pid = int(instance.tmux("display-message", "-p", "-t", f"={sid}:", "#{pane_pid}").stdout)
        os.kill(pane_pid, signal.SIGKILL)  # the session's ssh
        for _ in range(60):
            info = await c.get_session(sid)
            if info.state == "disconnected" and info.exit_status is not None:
                break
            await asyncio.sleep(0.1)
        assert info.state == "disconnected"
        assert info.exit_status is not None
        try:
            await c.send_command(sid, SendCommandRequest(command="echo hi"))
        except Exception as exc:  # the API's SessionDisconnected, rebuilt client side
            assert getattr(exc, "code", "") == "session_disconnected"
            assert "reconnect_session" in getattr(exc, "hint", "")
        else:
            raise AssertionError("a command to a dead session was accepted")


async def test_wait_for_spans_chunks_with_progress(instance: Instance) -> None:
    events: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append(progress)

    async with Client(instance.mcp_params()) as c:
        opened = await c.call_tool("open_session", {"host": "bash"})
        assert opened.structured_content is not None
        sid = opened.structured_content["session_id"]
        started = await c.call_tool(
            "send_command", {"session_id": sid, "command": "(sleep 7; echo late-line) &"}
        )
        assert started.structured_content is not None and started.structured_content["status"] == "completed"
        res = await c.call_tool(
            "wait_for",
            {"session_id": sid, "pattern": "late-l.ne", "timeout": 30},
            progress_callback=on_progress,
        )
        assert not res.is_error and res.structured_content is not None
        assert res.structured_content["matched"] is True
        assert res.structured_content["line"] == "late-line"
        assert events, "no progress notification during a 7 s wait"


async def test_shim_starts_the_daemon_before_the_first_tool_call(idle_instance: Instance) -> None:
    """The daemon's start-up overlaps the MCP handshake instead of delaying the first tool call."""
    from sshkeep.common.errors import DaemonUnavailable

    async with Client(idle_instance.mcp_params()), idle_instance.client() as c:
        for _ in range(200):  # no tool has been called: the shim started the daemon on its own
            try:
                health = await c.health()
                break
            except DaemonUnavailable:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("no daemon answered although the shim is up")
    assert health.status == "ok"
