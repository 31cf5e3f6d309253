"""The human side: `sshkeep ls`, `sshkeep logs ID [--follow]`, `sshkeep attach ID` in a real tmux."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshkeep.common.models.jobs import OpenTerminalRequest
from sshkeep.common.models.sessions import SendCommandRequest
from sshkeep.common.paths import resolve_paths
from sshkeep.daemon.sessions.logcap import punch
from tests.instance import Instance, clean_env, run_sshkeep
from tests.support import SHELLS, OuterTmux, open_session, wait_until


async def run(instance: Instance, sid: str, command: str) -> str:
    async with instance.client() as c:
        r = await c.send_command(sid, SendCommandRequest(command=command, timeout=30))
        assert (r.status, r.exit_code) == ("completed", 0), r
        return r.output


async def test_ls_table_and_json(instance: Instance) -> None:
    async with instance.client() as c:
        bash, dash = await open_session(c, "bash"), await open_session(c, "dash")
    await run(instance, bash, "true")

    res = instance.cli("ls")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["ID", "STATE", "TARGET", "SHELL", "AGE", "RUNNING"]
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert rows[bash][1:4] == ["ready", "bash", "bash"]
    assert rows[dash][1:4] == ["ready", "dash", "dash"]
    assert rows[bash][5] == "-"
    assert "sshkeep attach ID" in res.stdout

    res = instance.cli("ls", "--json")
    assert res.returncode == 0, res.stderr
    listed = {s["session_id"]: s for s in json.loads(res.stdout)["sessions"]}
    assert listed.keys() == {bash, dash}
    assert listed[dash]["shell"] == "dash" and listed[dash]["state"] == "ready"


def test_ls_starts_a_daemon(idle_instance: Instance) -> None:
    assert not idle_instance.socket.exists()
    res = idle_instance.cli("ls")
    assert res.returncode == 0, res.stderr + idle_instance.daemon_log()
    assert res.stdout.startswith("no sessions")
    assert idle_instance.daemon_pid() is not None


@pytest.mark.parametrize("shell", SHELLS)
async def test_logs_renders_the_transcript(instance: Instance, shell: str) -> None:
    async with instance.client() as c:
        sid = await open_session(c, shell)
    await run(instance, sid, "printf 'aaa\\rbb\\n'; printf '\\033[31mred\\033[0m text\\n'")
    await run(instance, sid, "echo logs-$((6*7))")

    res = instance.cli("logs", sid)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    lines = text.splitlines()
    assert "bba" in lines  # the \r rewrite applied
    assert "red text" in lines  # colours stripped
    assert "logs-42" in lines
    assert any(line.rstrip().endswith("echo logs-$((6*7))") for line in lines), text
    # sshkeep's plumbing (setup lines, markers, escape bytes, dash's start call) is not shown
    for junk in ("__sk_", "133;", "\x1b", "\r"):
        assert junk not in text, (junk, text)

    res = instance.cli("logs", sid, "-n", "2")
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == lines[-2:]


async def test_logs_follow_streams_until_ctrl_c_or_close(instance: Instance) -> None:
    async with instance.client() as c:
        sid = await open_session(c, "bash")
    await run(instance, sid, "echo before-follow")

    async def follower() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sshkeep", "logs", sid, "--follow",
            env=instance.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.DEVNULL,
        )  # fmt: skip

    async def read_until(proc: asyncio.subprocess.Process, wanted: str) -> list[str]:
        assert proc.stdout is not None
        seen: list[str] = []
        while wanted not in seen:
            raw = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert raw, f"follow ended before {wanted!r}; saw {seen}"
            seen.append(raw.decode().rstrip("\n"))
        return seen

    interrupted = await follower()
    closed = await follower()
    for proc in (interrupted, closed):
        await read_until(proc, "before-follow")  # what was already there
    await run(instance, sid, "echo follow-$((6*7))")
    for proc in (interrupted, closed):
        seen = await read_until(proc, "follow-42")  # new output, as it arrives
        assert "__sk_" not in "".join(seen)

    interrupted.send_signal(signal.SIGINT)
    assert await asyncio.wait_for(interrupted.wait(), 30) == 0

    async with instance.client() as c:
        await c.close_session(sid)
    _, err = await asyncio.wait_for(closed.communicate(), 60)  # ends by itself
    assert closed.returncode == 0
    assert f"session {sid} was closed" in err.decode()


async def test_logs_and_attach_refuse_unknown_and_bad_ids(instance: Instance) -> None:
    for cmd in ("logs", "attach"):
        res = instance.cli(cmd, "nope-123456")
        assert res.returncode == 1, res
        assert 'no session "nope-123456"' in res.stderr
        assert "sshkeep ls" in res.stderr
        res = instance.cli(cmd, "../state/state.db")
        assert res.returncode == 1, res
        assert "'../state/state.db' is not a session id" in res.stderr
        assert res.stdout == ""


@pytest.fixture
def outer_tmux(tmp_path: Path) -> Iterator[OuterTmux]:
    outer = OuterTmux(tmp_path / "outer.sock")
    try:
        yield outer
    finally:
        outer("kill-server")


async def test_attach_shows_the_session_in_tmux(instance: Instance, outer_tmux: OuterTmux) -> None:
    async with instance.client() as c:
        sid = await open_session(c, "bash")
    await run(instance, sid, "echo attach-$((6*7))")

    env = f"SSHKEEP_HOME={shlex.quote(instance.env['SSHKEEP_HOME'])}"
    cli = f"{shlex.quote(sys.executable)} -m sshkeep attach {sid}"
    # Inside the outer tmux, $TMUX is set: attach must still reach sshkeep's own server.
    script = f"cd / && env {env} {cli}; echo attach-exit=$?; sleep 600"
    started = outer_tmux("new-session", "-d", "-s", "outer", "-x", "200", "-y", "50", script)
    assert started.returncode == 0, started.stderr

    wait_until(lambda: "attach-42" in outer_tmux.screen(), "the session's screen in the outer pane")
    assert "echo attach-$((6*7))" in outer_tmux.screen()
    clients = instance.tmux("list-clients", "-F", "#{session_name}").stdout.split()
    assert sid in clients  # a real client of sshkeep's server, on this session

    # Detach (the prefix goes through the outer pane to the inner client): attach returns 0.
    assert outer_tmux("send-keys", "-t", "outer", "C-b", "d").returncode == 0
    wait_until(lambda: "attach-exit=0" in outer_tmux.screen(), "attach to return after detaching")
    assert sid not in instance.tmux("list-clients", "-F", "#{session_name}").stdout.split()
    # The session itself is untouched.
    assert await run(instance, sid, "echo still-$((6*7))") == "still-42"


async def test_attach_to_another_terminal(instance: Instance, outer_tmux: OuterTmux) -> None:
    async with instance.client() as c:
        sid = await open_session(c, "bash")
        await c.open_terminal(sid, OpenTerminalRequest(name="side"))
        res = await c.send_command(sid, SendCommandRequest(command="echo side-$((6*7))", terminal="side"))
        assert res.output == "side-42"
    listing = run_sshkeep("ls", env=instance.env)
    assert f"{sid}:side" in listing.stdout and "terminal" in listing.stdout
    env = f"SSHKEEP_HOME={shlex.quote(instance.env['SSHKEEP_HOME'])}"
    cli = f"{shlex.quote(sys.executable)} -m sshkeep attach {sid} --terminal side"
    script = f"cd / && env {env} {cli}; echo attach-exit=$?; sleep 600"
    started = outer_tmux("new-session", "-d", "-s", "outer", "-x", "200", "-y", "50", script)
    assert started.returncode == 0, started.stderr
    wait_until(lambda: "side-42" in outer_tmux.screen(), "the terminal's screen in the outer pane")
    assert outer_tmux("send-keys", "-t", "outer", "C-b", "d").returncode == 0
    wait_until(lambda: "attach-exit=0" in outer_tmux.screen(), "attach to return after detaching")
    bad = run_sshkeep("attach", sid, "--terminal", "nope", env=instance.env)
    assert bad.returncode == 1 and 'no terminal "nope" (it has: main, side)' in bad.stderr


def test_logs_of_a_large_capped_log(tmp_path: Path) -> None:
    """`logs` reads the file itself: `-n` reads only the tail, and output the log cap dropped
    (a punched hole, which reads as zeros) is skipped to the next whole line and reported."""
    env = clean_env(SSHKEEP_HOME=str(tmp_path / "home"))
    logs_dir = resolve_paths(env).logs_dir
    logs_dir.mkdir(parents=True)
    log = logs_dir / "big-1.log"
    lines = [b"\x1b[1mline-%d\x1b[0m\r\n" % i for i in range(300_000)]
    log.write_bytes(b"".join(lines) + b"$ ")
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    hole = 1 << 20
    # the first line known to be whole: its preceding newline survived the hole
    first_whole = next(i for i, start in enumerate(starts) if start > hole)

    def logs(*args: str) -> subprocess.CompletedProcess[str]:
        return run_sshkeep("logs", "big-1", *args, env=env, timeout=120)

    res = logs("-n", "3")
    assert res.returncode == 0, res.stderr
    assert res.stdout == "line-299998\nline-299999\n$ \n"

    assert punch(log, 0, hole)
    res = logs()
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == [f"line-{i}" for i in range(first_whole, 300_000)] + ["$ "]
    assert "\0" not in res.stdout
    assert "were dropped" in res.stderr
