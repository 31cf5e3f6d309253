"""Every pane's log writer is a child of one writer host living with the tmux server: a pane's
writer costs a fraction of an interpreter's memory, output stays exact, and the host outlives the
daemon (a restarted daemon's new sessions are served by the same host)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from tests.instance import Instance
from tests.sshd import descendants
from tests.support import eventually


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def ppid(pid: int) -> int:
    """The parent of `pid`, or -1 once it is gone (processes come and go while we look)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return -1
    return int(stat[stat.rfind(")") + 2 :].split()[1])


def processes() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def hosts(inst: Instance) -> list[int]:
    """The host: its children (the writers) were forked from it and show the same command line."""
    sock = str(inst.paths.writer_socket)
    matched = [p for p in processes() if cmdline(p)[-2:] == ["--host", sock]]
    return [p for p in matched if ppid(p) not in matched]


def writers_by_itself(inst: Instance) -> list[int]:
    """Writers that kept their input (no host took it): their command line names a log of ours."""
    logs = str(inst.paths.logs_dir)
    return [p for p in processes() if any(a.startswith(logs) and a.endswith(".log") for a in cmdline(p))]


async def test_each_pane_s_writer_is_a_child_of_the_host(instance: Instance) -> None:
    """Sessions opened together by a daemon that has no host yet: they wait for the one it starts."""
    async with instance.client() as c:
        opened = await asyncio.gather(*(c.open_session(OpenSessionRequest(host="bash")) for _ in range(3)))
        sids = [o.session_id for o in opened]
        (host,) = hosts(instance)
        tmux_pid = int(instance.tmux("display-message", "-p", "#{pid}").stdout.strip())
        assert ppid(host) == tmux_pid  # started through tmux: it lives as long as the server
        children = descendants(host)  # its writers, which start nothing
        assert len(children) == 3

        async def none_by_itself() -> bool:  # the processes tmux started exit once they handed over
            return writers_by_itself(instance) == []

        await eventually(none_by_itself, "the processes tmux started to hand over and exit", timeout=10)
        for sid in sids:
            r = await c.send_command(sid, SendCommandRequest(command=f"printf '%s\\n' {sid} x y"))
            assert (r.status, r.output) == ("completed", f"{sid}\nx\ny")
        await c.close_session(sids[0])

        async def two_children_left() -> bool:
            return len(descendants(host)) == 2

        await eventually(two_children_left, "the closed session's writer to exit")


async def test_the_host_outlives_the_daemon(instance: Instance) -> None:
    async with instance.client() as c:
        first = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
    (host,) = hosts(instance)
    instance.stop(signal.SIGKILL)
    instance.start()
    async with instance.client() as c:
        again = await c.send_command(first, SendCommandRequest(command="echo still"))
        assert (again.status, again.output) == ("completed", "still")
        second = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        r = await c.send_command(second, SendCommandRequest(command="echo new"))
        assert (r.status, r.output) == ("completed", "new")
    assert hosts(instance) == [host]
    assert len(descendants(host)) == 2

    async def none_by_itself() -> bool:
        return writers_by_itself(instance) == []

    await eventually(none_by_itself, "the processes tmux started to hand over and exit", timeout=10)
