"""kill -9 of the daemon while send_command runs: the command runs once, the reply is its own.

The agent's MCP call goes through the real shim; the daemon is killed at a random moment after
the call starts (before the request arrives, while the intent is recorded, right after the keys
went to tmux, while the command runs, after it ended but before the reply). The shim starts a new
daemon, which adopts the session, and sends the same call again: each command must append its line
to the remote file exactly once, and each reply must be that command's own result.

The narrow moments get a test each: a retry that finds its command still running (followed, not
`session_busy`), a record whose keys never reached tmux (dropped, then typed by the retry), keys
that reached tmux before their record reached the store (recorded from the typed mark, followed by
the retry), and keys the daemon died under (not sent again: `call_interrupted`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from sshkeep.common.errors import BadRequest
from sshkeep.common.models.sessions import SendCommandRequest
from sshkeep.daemon.sessions.store import CommandRecord, Store
from tests.instance import Instance
from tests.support import call, eventually, mcp_open_session, open_session, text_of

# Tries per terminal: bash and zsh have a pre-exec hook, dash and ash do not; `bash+t1` is a second
# terminal of the bash session (adopted by terminals.py, not the session manager).
TRIES = {"bash": 8, "dash": 7, "zsh": 7, "ash": 7, "bash+t1": 5}


async def _live_pid(inst: Instance, mcp: Client) -> int:
    """The pid of the daemon serving now: a kill that came after the last reply left none, and
    the next tool call starts one."""
    await call(mcp, "list_sessions")
    pid = await asyncio.to_thread(inst.daemon_pid)
    assert pid is not None, inst.daemon_log()
    return pid


def _delay(rng: random.Random) -> float:
    """When to kill: mostly within the few ms a short command takes from call to reply."""
    roll = rng.random()
    if roll < 0.6:
        return rng.uniform(0.0, 0.012)
    if roll < 0.85:
        return rng.uniform(0.012, 0.05)
    return rng.uniform(0.05, 0.4)


@pytest.fixture
def marks() -> Iterator[Path]:
    """A file every test user may append to (the remote host is this machine)."""
    path = Path(f"/tmp/sk-crash-{uuid.uuid4().hex[:8]}")
    path.touch()
    path.chmod(0o666)
    yield path
    path.unlink(missing_ok=True)


async def _try_once(
    inst: Instance, mcp: Client, where: dict[str, str], command: str, delay: float
) -> str | None:
    """Send `command` and kill -9 the daemon `delay` s later; what is wrong with the reply, if anything."""
    pid = await _live_pid(inst, mcp)
    task = asyncio.create_task(mcp.call_tool("send_command", {**where, "command": command, "timeout": 20}))
    await asyncio.sleep(delay)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    res = await task
    if res.is_error:
        return text_of(res)[:300]
    got = res.structured_content or {}
    mine = (got.get("status"), got.get("exit_code"), got.get("output"), got.get("command"))
    reply = command.rsplit(" ", 1)[1]
    return None if mine == ("completed", 0, reply, command) else f"{mine} {got.get('hint')}"


async def test_kill_9_while_commands_are_typed(idle_instance: Instance, marks: Path) -> None:
    inst = idle_instance
    seed = os.environ.get("SSHKEEP_CRASH_SEED") or uuid.uuid4().hex[:8]
    rng = random.Random(seed)
    failures: list[str] = []
    expected: list[str] = []
    sessions: dict[str, str] = {}
    async with Client(inst.mcp_params()) as mcp:
        for name, tries in TRIES.items():
            shell, _, terminal = name.partition("+")
            if shell not in sessions:
                sessions[shell] = await mcp_open_session(mcp, shell)
            where = {"session_id": sessions[shell]}
            if terminal:
                await call(mcp, "open_terminal", {**where, "name": terminal})
                where["terminal"] = terminal
            for i in range(tries):
                tag = f"{shell}-{terminal or 'main'}-{i}"
                expected.append(tag)
                # A third of the commands run long enough for the kill to land while they run.
                pause = rng.choice(["", "", "sleep 0.2; "])
                command = f"echo {tag} >> {marks}; {pause}echo reply-{tag}"
                delay = _delay(rng)
                wrong_reply = await _try_once(inst, mcp, where, command, delay)
                if wrong_reply is not None:
                    failures.append(f"{tag} (killed after {delay * 1000:.0f} ms): {wrong_reply}")
            # The terminal still works after all the kills.
            after = await call(mcp, "send_command", {**where, "command": f"echo after-{shell}"})
            assert after["output"] == f"after-{shell}", after
    lines = (await asyncio.to_thread(marks.read_text)).split()
    counts = {tag: lines.count(tag) for tag in expected}
    not_once = {tag: n for tag, n in counts.items() if n != 1}
    assert not not_once and not failures, (
        f"seed {seed}: ran other than once: {not_once}\nreplies not their own: {failures}\n"
        + inst.daemon_log()[-3000:]
    )
    assert sorted(lines) == sorted(expected)


async def test_a_retry_after_kill_9_follows_the_running_command(instance: Instance, marks: Path) -> None:
    body = SendCommandRequest(
        command=f"sleep 1; echo slow >> {marks}; echo done-slow", timeout=0.3, request_id="retry-0001"
    )
    async with instance.client() as c:
        sid = await open_session(c, "bash")
        first = await c.send_command(sid, body)
        assert first.status == "running"
    instance.stop(signal.SIGKILL)
    instance.start()
    async with instance.client() as c:
        again = await c.send_command(sid, body.model_copy(update={"timeout": 20}))
        assert (again.command_id, again.status, again.output) == (first.command_id, "completed", "done-slow")
        assert again.note is not None and "nothing was typed again" in again.note
        with pytest.raises(BadRequest, match="request_id 'retry-0001' was used for another command"):
            await c.send_command(sid, SendCommandRequest(command="echo other", request_id="retry-0001"))
        listed = await c.list_commands(sid)
        assert [x.command_id for x in listed.commands] == [first.command_id]
    assert (await asyncio.to_thread(marks.read_text)).split() == ["slow"]


async def test_a_command_recorded_but_never_typed_runs_on_its_retry(instance: Instance, marks: Path) -> None:
    command = f"echo late >> {marks}; echo done-late"
    async with instance.client() as c:
        sid = await open_session(c, "dash")
    instance.stop()
    # What a daemon killed after recording a command and before typing it leaves behind.
    store = Store(instance.paths.db_file)
    saved = await store.load_session(sid)
    assert saved is not None
    seq = saved[1]
    log_size = (instance.paths.logs_dir / f"{sid}.log").stat().st_size
    await store.save_command(
        CommandRecord(
            session_id=sid, command_id=f"c{seq}", seq=seq, command=command, status="running",
            exit_code=None, sent_pos=log_size, skip_newlines=1, out_start=None, out_end=None,
            started_at=time.time(), request_id="lost-0001",
        )
    )  # fmt: skip
    store.close()
    instance.start()
    async with instance.client() as c:
        info = await c.get_session(sid)
        assert (info.state, info.running_command_id) == ("ready", None)
        res = await c.send_command(sid, SendCommandRequest(command=command, request_id="lost-0001"))
        assert (res.status, res.output, res.note) == ("completed", "done-late", None)
        assert res.command_id != f"c{seq}"  # the id of the command that never ran is not reused
    assert (await asyncio.to_thread(marks.read_text)).split() == ["late"]


async def test_a_command_typed_before_its_record_was_stored_is_followed_by_its_retry(
    instance: Instance, marks: Path
) -> None:
    body = SendCommandRequest(
        command=f"sleep 0.3; echo typed >> {marks}; echo done-typed", request_id="early-0001"
    )
    async with instance.client() as c:
        sid = await open_session(c, "bash")
        first = await c.send_command(sid, body.model_copy(update={"timeout": 0.1}))
        assert first.status == "running"
    instance.stop(signal.SIGKILL)
    # What a daemon killed after typing a short command and before its commit leaves behind: the
    # keys in tmux with the pane's typed mark, and no record in the store.
    store = Store(instance.paths.db_file)
    await store.forget_command(sid, first.command_id)
    assert [r.command_id for r in await store.commands(sid)] == []
    store.close()
    instance.start()
    async with instance.client() as c:
        again = await c.send_command(sid, body.model_copy(update={"timeout": 20}))
        assert (again.command_id, again.status, again.output) == (first.command_id, "completed", "done-typed")
        assert again.note is not None and "nothing was typed again" in again.note
        listed = await c.list_commands(sid)
        assert [x.command_id for x in listed.commands] == [first.command_id]
        after = await c.send_command(sid, SendCommandRequest(command="echo next"))
        assert (after.output, after.command_id) != ("next", first.command_id) and after.output == "next"
    assert (await asyncio.to_thread(marks.read_text)).split() == ["typed"]


async def test_keys_the_daemon_died_under_are_not_sent_again(idle_instance: Instance, marks: Path) -> None:
    async with Client(idle_instance.mcp_params()) as mcp:
        sid = await mcp_open_session(mcp, "bash")
        reading = await call(
            mcp,
            "send_command",
            {"session_id": sid, "command": f"read x; echo got-$x >> {marks}", "timeout": 0.5},
        )
        assert reading["status"] in ("running", "waiting_input"), reading
        pid = await _live_pid(idle_instance, mcp)
        # The daemon types the keys, then waits (up to 10 s) for the command they went to: kill it
        # once they show on the screen.
        task = asyncio.create_task(
            mcp.call_tool("send_keys", {"session_id": sid, "keys": ["abc"], "wait": 10})
        )

        async def typed() -> bool:
            screen = await asyncio.to_thread(idle_instance.tmux, "capture-pane", "-p", "-t", f"={sid}:")
            return "abc" in screen.stdout

        await eventually(typed, "the keys on the screen", timeout=8)
        os.kill(pid, signal.SIGKILL)
        res = await task
        assert res.is_error and text_of(res).startswith("[call_interrupted]"), text_of(res)
        assert "send_keys was in flight" in text_of(res)
        # A new daemon serves already; the keys were typed once: Enter ends the line they began.
        done = await call(mcp, "send_keys", {"session_id": sid, "keys": ["Enter"], "wait": 5})
        assert done["result"]["status"] == "completed", done
    assert (await asyncio.to_thread(marks.read_text)).split() == ["got-abc"]
