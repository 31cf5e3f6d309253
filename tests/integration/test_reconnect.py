"""reconnect_session after real breakage, in all four shells: ssh killed, sshd restarted (its
connections ended), the network black-holed and back, and a remote idle logout (TMOUT).

The sessions run against an sshd in a network namespace of its own (tests/netns.py), behind a
veth the tests can cut; it shows a login banner, which no command's output may ever hold. Each
scenario breaks the four shells' sessions at once, then checks for each: the disconnect message
is what ssh printed (never sshkeep's setup text), the command that ran ends where ssh ended,
and after the reconnect the session is ready and integrated with exact output and exit codes.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import tempfile
from collections.abc import Awaitable, Callable, Iterator

import pytest

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import SessionDisconnected
from sshkeep.common.models.sessions import (
    CommandQuery,
    OpenSessionRequest,
    ReconnectRequest,
    SendCommandRequest,
    SessionInfo,
)
from tests.instance import Instance, instance_of
from tests.netns import BANNER, NetnsSshd, netns_sshd
from tests.sshd import SHELL_USERS, SshServer
from tests.support import SHELLS, wait_state

# Notice a dead path within about three seconds instead of sshkeep's default minute.
FAST_ALIVE = {"ServerAliveInterval": "1", "ServerAliveCountMax": "2"}
# How ssh words the end of a connection whose sshd was killed (read, write or reset).
SSH_CLOSING = re.compile(r"closed by remote host|Broken pipe|Connection reset|Connection closed by")
SETUP_TEXT = ("__sk", "133;", "PROMPT_COMMAND", "precmd_functions", "hist_ignore_space")


@pytest.fixture(scope="module")
def ns_sshd(sshd: SshServer) -> Iterator[NetnsSshd]:
    with netns_sshd(sshd, sshd.client_key.parent) as server:
        yield server


@pytest.fixture(scope="module")
def world(ns_sshd: NetnsSshd) -> Iterator[Instance]:
    conns = {f"ns-{sh}": {**ns_sshd.connection(sh, **FAST_ALIVE), "policy": "admin"} for sh in SHELLS}
    with instance_of(conns) as inst:
        yield inst


async def _each(fn: Callable[[str], Awaitable[object]]) -> None:
    """`fn(shell)` for the four shells at once; a failure names its shell."""

    async def one(sh: str) -> None:
        try:
            await fn(sh)
        except AssertionError as exc:
            raise AssertionError(f"[{sh}] {exc}") from exc

    await asyncio.gather(*(one(sh) for sh in SHELLS))


def _said_after(world: Instance, sid: str, last_output: str) -> list[str]:
    """The lines a dead pane's screen shows after `last_output` (the running command's), without
    tmux's own "Pane is dead" line: what ssh printed as it ended."""
    screen = world.tmux("capture-pane", "-p", "-t", f"={sid}:").stdout.splitlines()
    assert last_output in screen, screen
    last = max(i for i, line in enumerate(screen) if line == last_output)
    after = screen[last + 1 :]
    return [ln.strip() for ln in after if ln.strip() and not ln.startswith("Pane is dead")]


class Victim:
    """One shell's session through a breakage: opened, busy with a command, then checked."""

    def __init__(self, c: ApiClient, shell: str) -> None:
        self.c, self.shell = c, shell
        self.sid = ""
        self.running = ""

    async def open_busy(self, cwd: str = "/tmp") -> None:
        info = await self.c.open_session(OpenSessionRequest(host=f"ns-{self.shell}"))
        assert (info.state, info.integrated, info.shell) == ("ready", True, self.shell), info
        self.sid = info.session_id
        r = await self.c.send_command(self.sid, SendCommandRequest(command=f"cd '{cwd}' && echo before"))
        assert (r.status, r.output) == ("completed", "before"), r
        r = await self.c.send_command(
            self.sid, SendCommandRequest(command="echo started; sleep 600", timeout=1)
        )
        assert (r.status, r.output) == ("running", "started"), r
        self.running = r.command_id

    async def disconnected(self) -> SessionInfo:
        await wait_state(self.c, self.sid, "disconnected", timeout=60)
        info = await self.c.get_session(self.sid)
        if self.running:
            old = await self.c.get_command(self.sid, self.running, CommandQuery())
            assert (old.status, old.output) == ("disconnected", "started"), old
        with pytest.raises(SessionDisconnected):
            await self.c.send_command(self.sid, SendCommandRequest(command="echo lost"))
        return info

    async def reconnect_and_check(self, cwd: str = "/tmp", restored: bool = True) -> SessionInfo:
        """Reconnect; the new shell is back in `cwd` (else, when it is gone, in the login directory)."""
        info = await self.c.reconnect_session(self.sid, ReconnectRequest(timeout=30))
        assert (info.state, info.integrated, info.shell) == ("ready", True, self.shell), info
        assert info.hint is not None and "new remote shell" in info.hint, info.hint
        if restored:
            assert f"back in the old one's working directory {cwd};" in info.hint, info.hint
        else:
            assert f"could not return to the old one's working directory {cwd}" in info.hint, info.hint
        r = await self.c.send_command(self.sid, SendCommandRequest(command="pwd"))
        home = f"/home/{SHELL_USERS[self.shell]}"
        assert (r.status, r.output) == ("completed", cwd if restored else home), r
        for command, want, code in (
            ("echo ok", "ok", 0),
            ("false", "", 1),
            ("sh -c 'exit 7'", "", 7),
            ("echo LATER-OUTPUT", "LATER-OUTPUT", 0),
            ("printf 'a\\nb\\n'; true", "a\nb", 0),
        ):
            r = await self.c.send_command(self.sid, SendCommandRequest(command=command))
            assert (r.status, r.output, r.exit_code) == ("completed", want, code), (command, r)
        old = await self.c.get_command(self.sid, self.running, CommandQuery())
        assert (old.status, old.output) == ("disconnected", "started"), old
        assert BANNER not in old.output
        return info


def _no_setup_text(message: str | None) -> None:
    assert message is not None
    for word in SETUP_TEXT:
        assert word not in message, f"the disconnect message quotes sshkeep's setup: {message!r}"


async def test_reconnect_after_ssh_was_killed(world: Instance, ns_sshd: NetnsSshd) -> None:
    """Also: the host is slow to log in again (6 s before the shell starts, longer than a shell that
    ignores the setup is given): the shell integrated before is waited for, never judged not
    sh-compatible."""
    async with world.client() as c:
        victims = {sh: Victim(c, sh) for sh in SHELLS}
        gone = {sh: tempfile.mkdtemp(prefix=f"sk-gone-{sh}-", dir="/tmp") for sh in SHELLS}
        try:
            for sh in SHELLS:
                os.chmod(gone[sh], 0o755)
            await asyncio.gather(*(victims[sh].open_busy(gone[sh]) for sh in SHELLS))
        finally:
            # The old shells' directories go while the sessions are down (the same machine): the
            # new shells cannot return there, and the replies say so.
            for path in gone.values():
                os.rmdir(path)

        async def scenario(sh: str) -> None:
            v = victims[sh]
            world.kill_ssh(v.sid, signal.SIGTERM)
            info = await v.disconnected()
            _no_setup_text(info.message)
            # OpenSSH prints nothing when it is killed: the message says so instead of showing the
            # running command's output (or sshkeep's setup) as ssh's words.
            assert (
                info.message
                == "ssh exited with status 255 and printed nothing (killed, or its connection was cut)"
            ), info
            assert info.hint is not None and "reconnect_session" in info.hint
            await v.reconnect_and_check(gone[sh], restored=False)

        ns_sshd.slow_logins(6)
        try:
            await _each(scenario)
        finally:
            ns_sshd.slow_logins(0)


async def test_reconnect_after_sshd_restart(world: Instance, ns_sshd: NetnsSshd) -> None:
    async with world.client() as c:
        victims = [Victim(c, sh) for sh in SHELLS]
        await asyncio.gather(*(v.open_busy() for v in victims))
        await asyncio.to_thread(ns_sshd.restart)
        for v in victims:
            info = await v.disconnected()
            _no_setup_text(info.message)
            # A connection whose sshd is killed ends in more than one way (ssh reads its end,
            # fails to send its own disconnect, or exits 255 without a word): the message says
            # what ssh printed, as the dead pane's screen shows it, and never more.
            said = _said_after(world, v.sid, "started")
            message = info.message or ""
            if "printed nothing" in message:
                assert "status 255" in message, (v.shell, info)
            else:
                assert SSH_CLOSING.search(message), (v.shell, message, said)
                assert all(line in said for line in message.splitlines()), (v.shell, message, said)
        await _each(lambda sh: victims[SHELLS.index(sh)].reconnect_and_check())


async def test_reconnect_after_network_black_hole(world: Instance, ns_sshd: NetnsSshd) -> None:
    async with world.client() as c:
        victims = [Victim(c, sh) for sh in SHELLS]
        await asyncio.gather(*(v.open_busy() for v in victims))
        await asyncio.to_thread(ns_sshd.black_hole)
        try:
            for v in victims:
                info = await v.disconnected()
                _no_setup_text(info.message)
                tail = (world.paths.logs_dir / f"{v.sid}.log").read_bytes()[-600:]
                assert info.message is not None and "not responding" in info.message, (v.shell, info, tail)
        finally:
            await asyncio.to_thread(ns_sshd.restore)
        await _each(lambda sh: victims[SHELLS.index(sh)].reconnect_and_check())


# dash and busybox ash (as Debian builds it) have no TMOUT: only bash and zsh log out when idle.
@pytest.mark.parametrize("shell", ["bash", "zsh"])
async def test_idle_logout_is_reported_with_a_hint(world: Instance, shell: str) -> None:
    async with world.client() as c:
        v = Victim(c, shell)
        info = await c.open_session(OpenSessionRequest(host=f"ns-{shell}"))
        v.sid = info.session_id
        r = await c.send_command(v.sid, SendCommandRequest(command="TMOUT=1"))
        assert (r.status, r.exit_code) == ("completed", 0), r
        info = await v.disconnected()
        notice = {"bash": "timed out waiting for input: auto-logout", "zsh": "zsh: timeout"}[shell]
        assert info.message is not None and info.message.startswith(notice), info
        _no_setup_text(info.message)
        assert info.hint is not None and "TMOUT" in info.hint and "reconnect_session" in info.hint, info
        with pytest.raises(SessionDisconnected) as refused:
            await c.send_command(v.sid, SendCommandRequest(command="echo lost"))
        assert notice in refused.value.message and "TMOUT" in (refused.value.hint or "")
        again = await c.reconnect_session(v.sid, ReconnectRequest(timeout=30))
        assert (again.state, again.integrated) == ("ready", True), again
        r = await c.send_command(v.sid, SendCommandRequest(command="echo ok"))
        assert (r.status, r.output, r.exit_code) == ("completed", "ok", 0), r
