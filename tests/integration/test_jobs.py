"""Terminals and jobs against a real sshd and tmux: parallel terminals on one connection, jobs with
readiness, listing, stop escalation, survival of a daemon kill -9, and durable jobs across a
dropped ssh connection."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

from mcp import Client

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import BadRequest, PolicyRefused, TerminalExists, TerminalNotFound
from sshkeep.common.models.admin import CleanupRequest
from sshkeep.common.models.jobs import (
    JobQuery,
    JobResult,
    JobsQuery,
    OpenTerminalRequest,
    ReadySpec,
    StartJobRequest,
    StopJobRequest,
)
from sshkeep.common.models.sessions import (
    CommandQuery,
    InterruptRequest,
    OpenSessionRequest,
    ReconnectRequest,
    SendCommandRequest,
    SendKeysRequest,
    SnapshotQuery,
)
from tests.instance import Instance
from tests.sshd import SshServer


def kill_ssh(instance: Instance, sid: str) -> None:
    """Kill the ssh master in the session's main pane, as a network drop would."""
    out = instance.tmux("display-message", "-p", "-t", f"={sid}:0", "#{pane_pid}")
    assert out.returncode == 0, out.stderr
    os.kill(int(out.stdout.strip()), signal.SIGKILL)


async def wait_job(c: ApiClient, job_id: str, status: str, timeout: float = 30) -> JobResult:
    deadline = time.monotonic() + timeout
    while True:
        res = await c.get_job(job_id)
        if res.status == status:
            return res
        assert time.monotonic() < deadline, f"{job_id} still {res.status}, not {status}"
        await asyncio.sleep(0.2)


async def wait_stored(db: Path, key: str, command_id: str, timeout: float = 10) -> None:
    """Until the state DB holds the ended record `command_id` of terminal `key`."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            rows = conn.execute(
                "SELECT status FROM commands WHERE session_id=? AND command_id=?", (key, command_id)
            ).fetchall()
        if rows and rows[0][0] != "running":
            return
        assert time.monotonic() < deadline, f"{key} {command_id} not stored: {rows}"
        await asyncio.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- terminals ------------------------------------------------------------------------------------


async def test_two_terminals_run_commands_at_the_same_time(shared: Instance) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        t = await c.open_terminal(sid, OpenTerminalRequest(name="build"))
        assert (t.session_id, t.terminal, t.state, t.shell) == (sid, "build", "ready", "bash")
        assert t.attach.endswith(f"{sid}:build")
        main_cmd = SendCommandRequest(command="sleep 2; echo main-$((6*7)); (exit 3)", timeout=20)
        term_cmd = SendCommandRequest(
            command="sleep 2; printf 'build\\tdone\\n'; pwd", timeout=20, terminal="build"
        )
        a, b = await asyncio.gather(c.send_command(sid, main_cmd), c.send_command(sid, term_cmd))
        assert (a.terminal, a.status, a.exit_code, a.output) == ("main", "completed", 3, "main-42")
        assert (b.terminal, b.status, b.exit_code) == ("build", "completed", 0)
        assert b.output.split("\n")[0] == "build\tdone" and b.output.split("\n")[1].startswith("/")
        # They ran side by side: each started before the other ended.
        assert a.started_at is not None and b.started_at is not None
        assert a.ended_at is not None and b.ended_at is not None
        assert a.started_at < b.ended_at and b.started_at < a.ended_at
        # Separate records and logs: each terminal's own counter and its own command ids.
        again = await c.get_command(sid, b.command_id, CommandQuery(terminal="build"))
        assert again.output == b.output
        other = await c.get_command(sid, "last")
        assert other.output == "main-42"
        # list_sessions shows the terminal and what runs there.
        running = await c.send_command(
            sid, SendCommandRequest(command="sleep 30", timeout=0.3, terminal="build")
        )
        listing = {s.session_id: s for s in (await c.list_sessions()).sessions}
        (term,) = listing[sid].terminals
        assert (term.terminal, term.state, term.running_command_id) == ("build", "busy", running.command_id)
        assert term.running_command == "sleep 30"
        snap = await c.get_snapshot(sid, SnapshotQuery(terminal="build"))
        assert snap.terminal == "build" and "sleep 30" in snap.screen
        stopped = await c.interrupt_command(sid, InterruptRequest(terminal="build"))
        assert stopped.status == "interrupted"
        # Names are unique; unknown ones are refused by name.
        try:
            await c.open_terminal(sid, OpenTerminalRequest(name="build"))
            raise AssertionError("a second terminal named build was opened")
        except TerminalExists as exc:
            assert "build" in exc.message
        try:
            await c.send_command(sid, SendCommandRequest(command="true", terminal="nope"))
            raise AssertionError("an unknown terminal was accepted")
        except TerminalNotFound as exc:
            assert "main, build" in exc.message
        closed = await c.close_terminal(sid, "build")
        assert closed.closed
        assert (await c.get_session(sid)).terminals == []
        assert not (shared.paths.logs_dir / f"{sid}@build.log").exists()
        await c.close_session(sid)


async def test_keys_typed_in_a_terminal_are_its_records_across_a_daemon_restart(instance: Instance) -> None:
    """A line keys typed in another terminal is that terminal's record: stored under the terminal,
    so a daemon restart finds it there and the main terminal's record of the same id is intact."""
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        first = await c.send_command(sid, SendCommandRequest(command="echo main-one"))
        await c.open_terminal(sid, OpenTerminalRequest(name="side"))
        typed = await c.send_keys(sid, SendKeysRequest(keys=["echo side-keys", "Enter"], terminal="side"))
        assert typed.result is not None and typed.result.output == "side-keys", typed
        assert typed.result.command_id == first.command_id  # each terminal counts its own ids
    # Keys' records are written in the next batch: kill the daemon once that batch is on disk.
    await wait_stored(instance.paths.db_file, f"{sid}@side", typed.result.command_id)
    instance.stop(signal.SIGKILL)
    instance.start()
    async with instance.client() as c:
        main = await c.get_command(sid, first.command_id)
        assert (main.command, main.output, main.exit_code) == ("echo main-one", "main-one", 0)
        side = await c.get_command(sid, first.command_id, CommandQuery(terminal="side"))
        assert (side.terminal, side.command, side.output) == ("side", "echo side-keys", "side-keys")
        after = await c.send_command(sid, SendCommandRequest(command="echo main-two"))
        assert (after.command_id, after.output) == ("c2", "main-two")
        await c.close_session(sid)


async def test_terminal_on_a_password_login_asks_for_no_password(instance: Instance, sshd: SshServer) -> None:
    instance.write_config({**instance.connections, "pw": sshd.password_connection()})
    accepted = f"Accepted password for {sshd.password_user}"
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="pw"))).session_id
        logins = sshd.log().count(accepted)
        assert logins >= 1
        before = sshd.log()
        t = await c.open_terminal(sid)
        assert t.terminal == "t1" and t.state == "ready"
        res = await c.send_command(sid, SendCommandRequest(command="whoami; tty", terminal="t1"))
        assert res.status == "completed", res
        who, tty = res.output.split("\n")
        assert who == sshd.password_user and tty.startswith("/dev/pts/")
        main_tty = await c.send_command(sid, SendCommandRequest(command="tty"))
        assert main_tty.output != tty  # a pty of its own
        # No new login at all: the terminal is a channel of the existing connection.
        new_log = sshd.log()[len(before) :]
        assert accepted not in new_log and "Failed password" not in new_log
        assert sshd.log().count(accepted) == logins
        snap = await c.get_snapshot(sid, SnapshotQuery(terminal="t1"))
        assert "password" not in snap.screen.lower()
        await c.close_session(sid)


# --- foreground guards ----------------------------------------------------------------------------


async def test_background_jobs_and_endless_commands_get_notes(shared: Instance) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        res = await c.send_command(sid, SendCommandRequest(command="sleep 300 & echo started"))
        assert res.status == "completed"
        assert res.note is not None and "sleep 300" in res.note and "start_job" in res.note
        endless = await c.send_command(sid, SendCommandRequest(command="tail -f /dev/null", timeout=0.5))
        assert endless.status == "running"
        assert endless.hint is not None and "start_job" in endless.hint
        await c.interrupt_command(sid)
        await c.send_command(sid, SendCommandRequest(command="kill %1"))
        await c.close_session(sid)


# --- jobs -----------------------------------------------------------------------------------------


async def test_ready_pattern_that_shows_after_3s(shared: Instance) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        cmd = "echo booting; sleep 3; echo 'listening on port 4321'; sleep 300"
        spec = ReadySpec(pattern=r"listening on port \d+", timeout=20)
        job = await c.start_job(sid, StartJobRequest(command=cmd, name="srv", ready=spec))
        assert (job.status, job.ready, job.name, job.terminal) == ("running", True, "srv", job.job_id)
        assert job.ready_detail == "output matched: listening on port 4321"
        assert job.output == "booting\nlistening on port 4321"
        assert job.last_line == "listening on port 4321"
        # The job's terminal is a terminal like any other.
        info = await c.get_session(sid)
        assert [(t.terminal, t.job_id) for t in info.terminals] == [(job.job_id, job.job_id)]
        # A pattern that never shows: not ready, said why, the job still runs.
        slow = await c.start_job(
            sid, StartJobRequest(command="sleep 300", ready=ReadySpec(pattern="never", timeout=1))
        )
        assert (slow.ready, slow.status) == (False, "running")
        assert slow.ready_detail is not None and "within 1s" in slow.ready_detail
        # A job that fails before it is ready: not ready, with its exit code and output.
        bad = await c.start_job(
            sid, StartJobRequest(command="echo oops >&2; exit 4", ready=ReadySpec(pattern="up", timeout=20))
        )
        assert (bad.ready, bad.status, bad.exit_code, bad.output) == (False, "exited", 4, "oops")
        for j in (job, slow):
            stopped = await c.stop_job(j.job_id)
            assert (stopped.status, stopped.stopped_by) == ("stopped", "SIGINT")
        await c.close_session(sid)


async def test_ready_port_of_a_web_server(shared: Instance) -> None:
    port = free_port()
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        cmd = f"sleep 2; exec python3 -m http.server {port} --bind 127.0.0.1"
        job = await c.start_job(sid, StartJobRequest(command=cmd, ready=ReadySpec(port=port, timeout=30)))
        assert (job.status, job.ready, job.ready_detail) == (
            "running",
            True,
            f"port {port} accepts connections",
        )
        fetched = await c.send_command(
            sid,
            SendCommandRequest(command=f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/"),
        )
        assert fetched.output == "200"
        stopped = await c.stop_job(job.job_id)
        assert stopped.stopped_by == "SIGINT" and stopped.status == "stopped"
        assert stopped.stop_steps[-1].startswith("SIGINT ended it")
        await c.close_session(sid)


async def test_list_jobs_while_three_run(shared: Instance) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        started = []
        for n in (1, 2, 3):
            cmd = f"echo job-{n} up; sleep 300"
            started.append(
                await c.start_job(
                    sid, StartJobRequest(command=cmd, name=f"w{n}", ready=ReadySpec(pattern="up", timeout=20))
                )
            )
        listing = (await c.list_jobs(JobsQuery(session_id=sid))).jobs
        assert [(j.name, j.status, j.exit_code, j.last_line) for j in listing] == [
            (f"w{n}", "running", None, f"job-{n} up") for n in (1, 2, 3)
        ]
        assert [j.job_id for j in listing] == [j.job_id for j in started]
        assert all(j.started_at > 0 and j.ended_at is None for j in listing), [
            (j.status, j.started_at, j.ended_at) for j in listing
        ]
        everyone = {j.job_id for j in (await c.list_jobs()).jobs}
        assert {j.job_id for j in started} <= everyone
        for j in started:
            await c.stop_job(j.job_id)
        after = (await c.list_jobs(JobsQuery(session_id=sid))).jobs
        assert [(j.status, j.exit_code) for j in after] == [("stopped", 130)] * 3
        # Finished jobs stay until cleaned up; cleanup removes them with their terminals.
        cleaned = await c.cleanup_dead_sessions(CleanupRequest(max_age_seconds=0))
        assert set(cleaned.removed_jobs) >= {j.job_id for j in started}
        assert (await c.list_jobs(JobsQuery(session_id=sid))).jobs == []
        assert (await c.get_session(sid)).terminals == []
        await c.close_session(sid)


async def test_stop_escalates_to_sigterm_for_a_job_that_ignores_sigint(shared: Instance) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        cmd = "bash -c \"trap '' INT; echo armed; while :; do sleep 1; done\""
        job = await c.start_job(
            sid, StartJobRequest(command=cmd, ready=ReadySpec(pattern="armed", timeout=20))
        )
        assert job.ready
        res = await c.stop_job(job.job_id, StopJobRequest(grace=2))
        assert (res.status, res.stopped_by, res.exit_code) == ("stopped", "SIGTERM", 143)
        assert res.stop_steps[0] == "SIGINT sent (Ctrl-C in the job's terminal)"
        assert res.stop_steps[1] == "still running 2s after SIGINT"
        assert res.stop_steps[2].startswith("SIGTERM sent to process group ")
        assert res.stop_steps[3] == "SIGTERM ended it (exit code 143)"
        # Stopping again says it had ended.
        again = await c.stop_job(job.job_id)
        assert again.stop_steps == ["the job had already ended (stopped)"]
        try:
            await c.get_job("j-zzzzzz")
            raise AssertionError("a malformed job id was accepted")
        except BadRequest:
            pass
        await c.close_session(sid)


async def test_job_keeps_running_and_its_output_through_daemon_kill_9(instance: Instance) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        cmd = "for i in 1 2 3 4 5 6; do echo tick-$i; sleep 1; done; exit 5"
        job = await c.start_job(
            sid, StartJobRequest(command=cmd, ready=ReadySpec(pattern="tick-1", timeout=20))
        )
        assert job.ready
    instance.stop(signal.SIGKILL)
    # The next MCP call starts a daemon, which adopts the session, the job's terminal and the job.
    async with Client(instance.mcp_params()) as mcp:
        listed = await mcp.call_tool("list_jobs", {})
        assert not listed.is_error, listed.content
        assert listed.structured_content is not None
        (found,) = [j for j in listed.structured_content["jobs"] if j["job_id"] == job.job_id]
        assert found["status"] in ("running", "exited")
        res = await mcp.call_tool("get_job", {"job_id": job.job_id, "wait": 20})
        assert not res.is_error, res.content
        data = res.structured_content
        assert data is not None
        assert (data["status"], data["exit_code"]) == ("exited", 5)
        assert data["output"] == "\n".join(f"tick-{i}" for i in range(1, 7))
        sessions = await mcp.call_tool("list_sessions", {})
        assert sessions.structured_content is not None
        (s,) = [x for x in sessions.structured_content["sessions"] if x["session_id"] == sid]
        assert [t["terminal"] for t in s["terminals"]] == [job.job_id]


async def test_durable_job_through_a_dropped_connection(instance: Instance) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        flag = Path(f"/tmp/sk-durable-{os.getpid()}-{time.monotonic_ns()}")
        cmd = f"echo started; while [ ! -e {flag} ]; do sleep 0.2; done; echo after-reconnect; exit 3"
        job = await c.start_job(
            sid, StartJobRequest(command=cmd, durable=True, ready=ReadySpec(pattern="started", timeout=20))
        )
        assert (job.ready, job.durable, job.status) == (True, True, "running")
        assert job.remote_dir is not None and job.remote_dir.endswith(f"/.sshkeep-jobs/{job.job_id}")
        assert job.output == "started"
        plain = await c.open_terminal(sid, OpenTerminalRequest(name="plain"))
        gone = await c.start_job(sid, StartJobRequest(command="sleep 300", name="fragile"))
        kill_ssh(instance, sid)
        detached = await wait_job(c, job.job_id, "detached")
        assert detached.hint is not None and "reconnect_session" in detached.hint
        # The job runs on without any connection: it sees the flag only now.
        await asyncio.to_thread(flag.touch)
        info = await c.reconnect_session(sid, ReconnectRequest(timeout=30))
        # Every terminal respawned; the hint only says the shells are new.
        assert info.state == "ready" and info.hint is not None, info
        assert "could not be respawned" not in info.hint and "new remote shell" in info.hint
        states = {t.terminal: t.state for t in info.terminals}
        # The durable job's terminal and the plain one are back; the non-durable job died with ssh.
        assert states[plain.terminal] == "ready" and states[gone.job_id] == "disconnected"
        assert states[job.job_id] in ("busy", "ready")
        again = await c.send_command(sid, SendCommandRequest(command="echo back", terminal="plain"))
        assert again.output == "back"
        lost = await c.get_job(gone.job_id)
        assert lost.status == "disconnected" and lost.hint is not None and "durable" in lost.hint
        res = await c.get_job(job.job_id, JobQuery(wait=20))
        await asyncio.to_thread(flag.unlink)
        assert (res.status, res.exit_code) == ("exited", 3)
        assert res.output == "started\nafter-reconnect"
        d = job.remote_dir
        check = await c.send_command(
            sid, SendCommandRequest(command=f"stat -c %a {d} $(dirname {d}); cat {d}/status")
        )
        assert check.output == "700\n700\n3"
        cleaned = await c.cleanup_dead_sessions(CleanupRequest(max_age_seconds=0))
        assert job.job_id in cleaned.removed_jobs
        gone = await c.send_command(sid, SendCommandRequest(command=f"test -e {job.remote_dir}"))
        assert gone.exit_code == 1
        await c.close_session(sid)


async def test_durable_job_over_mcp_is_stopped_by_a_signal_to_its_group(shared: Instance) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="dash"))).session_id
    async with Client(shared.mcp_params()) as mcp:
        args = {
            "session_id": sid,
            "command": "echo up; sleep 300",
            "durable": True,
            "ready": {"pattern": "up"},
        }
        started = await mcp.call_tool("start_job", args)
        assert not started.is_error, started.content
        job = started.structured_content
        assert job is not None and (job["ready"], job["durable"], job["output"]) == (True, True, "up")
        res = await mcp.call_tool("stop_job", {"job_id": job["job_id"]})
        assert not res.is_error, res.content
        data = res.structured_content
        assert data is not None
        assert (data["status"], data["stopped_by"], data["exit_code"]) == ("stopped", "SIGINT", 130)
        assert data["output"] == "up"
        bad = await mcp.call_tool("start_job", {"session_id": sid, "command": "x", "ready": {}})
        assert bad.is_error
    async with shared.client() as c:
        await c.cleanup_dead_sessions(CleanupRequest(max_age_seconds=0))
        await c.close_session(sid)


async def test_the_guard_rails_apply_to_job_commands(instance: Instance, sshd: SshServer) -> None:
    instance.write_config({**instance.connections, "ro": {**sshd.connection("bash"), "policy": "read_only"}})
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="ro"))).session_id
        try:
            await c.start_job(sid, StartJobRequest(command="rm -rf /tmp/sk-never-$$"))
            raise AssertionError("read_only started a destructive job")
        except PolicyRefused as exc:
            assert "read_only" in exc.message
        assert (await c.list_jobs(JobsQuery(session_id=sid))).jobs == []
        # A read command is a job like any other under read_only.
        job = await c.start_job(sid, StartJobRequest(command="echo fine", ready=ReadySpec(pattern="fine")))
        assert job.ready
        done = await c.get_job(job.job_id, JobQuery(wait=10))
        assert (done.status, done.exit_code, done.output) == ("exited", 0, "fine")
        await c.close_session(sid)
