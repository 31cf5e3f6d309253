"""A person takes over a session's terminal, and hands it back.

`sshkeep attach ID --take` asks the daemon for control before it attaches tmux read-write (plain
`attach` watches read-only, so a person's keys never reach the agent's commands): the
session's state is `human` until the person detaches (the CLI then releases it), runs
`sshkeep release ID`, or the attaching process dies (the monitor notices). Meanwhile the agent's
typing tools (send_command, send_keys, answer_secret, interrupt_command) are refused with
`human_control`; its reads work. Every prompt cycle the person runs is a command record with
source `person`; once control ends, the agent's next reply lists them (once), and
`list_commands` lists them any time. A take-over is refused while the agent's command runs
(unless it asks for input): the person's typing would mix with its output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Mapping

import structlog

from sshkeep.common.errors import Conflict, HumanControl, SessionDisconnected, TmuxError
from sshkeep.common.models.sessions import CommandList, CommandSummary, ControlResult
from sshkeep.common.tmux import HELD_OPTION, quote
from sshkeep.daemon.sessions.session import Session, TakeOver
from sshkeep.daemon.sessions.tmux import Tmux

log = structlog.get_logger(__name__)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return True  # no /proc: the signal check said it exists
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"


SWEEP_INTERVAL = 1.0


class Control:
    """Take-over state of every session (kept on the Session, owned here).

    `lookup` finds a session by id (or raises SessionNotFound); `sessions` is the live map the
    sweep walks to release sessions whose holder died."""

    def __init__(
        self, lookup: Callable[[str], Session], sessions: Mapping[str, Session], tmux: Tmux | None = None
    ) -> None:
        self.lookup = lookup
        self.sessions = sessions
        self.tmux = tmux
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sweep_forever(), name="take-over-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            try:
                for sid in self.sweep():
                    await self.clients_follow(sid)
            except Exception:
                log.exception("take_over_sweep_failed")

    async def clients_follow(self, sid: str) -> None:
        """Make the session's tmux clients follow who holds it. The server's hook
        (common/tmux.py) attaches every person's client read-only unless the session's
        `@sshkeep_human` option is set; a take-over sets it, and once it ends every client still
        attached goes back to watching. So no client, `sshkeep attach` or a hand-typed `tmux
        attach`, types into the terminal while the agent may."""
        s = self.sessions.get(sid)
        if self.tmux is None or s is None:
            return
        target = quote(f"={s.tmux_session}:")
        try:
            if s.control is not None:
                await self.tmux.command(f"set-option -t {target} {HELD_OPTION} 1")
                return
            await self.tmux.command(f"set-option -u -t {target} {HELD_OPTION}")
            fields = "#{client_name} #{client_control_mode} #{client_readonly}"
            rows = await self.tmux.command(f"list-clients -t {target} -F {quote(fields)}")
            for row in rows:
                name, ctl, ro = [*row.split(), "", "", ""][:3]
                if name and ctl == "0" and ro == "0":
                    await self.tmux.command(f"refresh-client -t {quote(name)} -f read-only,ignore-size")
        except TmuxError as exc:  # the session went away meanwhile: nothing is attached to it
            log.info("clients_follow_failed", session=sid, error=str(exc))

    def refuse_if_human(self, s: Session) -> None:
        """Refuse the agent's typing into any terminal of a session a person holds."""
        main = self.sessions.get(s.id, s)  # another terminal of the session: its main one decides
        if main.control is not None:
            held = time.time() - main.control.since
            raise HumanControl(
                f"a person holds session {s.id}'s terminal (for {held:.0f}s); nothing was typed"
            )

    def take(self, sid: str, holder_pid: int | None) -> ControlResult:
        s = self.lookup(sid)
        if s.dead:
            raise SessionDisconnected(f"session {sid} is disconnected; reconnect it before taking it over")
        if s.control is not None:
            pid = s.control.holder_pid
            if pid is None or _alive(pid):
                raise Conflict(
                    f"session {sid} is already taken over" + (f" (by pid {pid})" if pid else ""),
                    hint=f"Attach without --take to watch, or `sshkeep release {sid}` first.",
                )
        rec = s.current
        if rec is not None and rec.source != "person" and s.pending_question() is None:
            # What a person types while the agent's command runs would land in its output (the
            # terminal echoes typed-ahead keys) and run after it: never mix the two.
            raise Conflict(
                f"the agent's command {rec.command_id} ({rec.command[:60]!r}) is running in session {sid}",
                hint=f"Watch it with `sshkeep attach {sid}` and take over once it has ended (or once it "
                "asks for input).",
            )
        s.control = TakeOver(holder_pid=holder_pid, since=time.time(), first_seq=s.next_seq)
        s.person_report = []
        log.info("session_taken", session=sid, holder_pid=holder_pid)
        return ControlResult(
            session_id=sid,
            state=s.state,
            taken=True,
            hint=f"The agent's typing is refused until you detach or run `sshkeep release {sid}`.",
        )

    def release(self, sid: str) -> ControlResult:
        s = self.lookup(sid)
        took = s.control
        if took is None:
            return ControlResult(
                session_id=sid,
                state=s.state,
                taken=False,
                changed=False,
                hint="The session was not taken over.",
            )
        s.control = None
        records = [r for r in sorted(s.commands.values(), key=lambda r: r.seq) if r.seq >= took.first_seq]
        person = [r for r in records if r.source == "person"]
        s.person_report = person
        log.info("session_released", session=sid, person_commands=len(person))
        return ControlResult(
            session_id=sid,
            state=s.state,
            taken=False,
            person_commands=[r.summary() for r in person],
            hint="The agent may type again; its next reply lists these commands.",
        )

    def report(self, s: Session) -> list[CommandSummary] | None:
        """The person's commands since the last take-over, once: the agent's next reply carries them."""
        s = self.sessions.get(s.id, s)
        records, s.person_report = s.person_report, []
        return [r.summary() for r in records] if records else None

    def sweep(self) -> list[str]:
        """Release sessions whose taking process is gone (the terminal was closed, the CLI killed);
        return their ids."""
        released: list[str] = []
        for s in list(self.sessions.values()):
            took = s.control
            if took is not None and took.holder_pid is not None and not _alive(took.holder_pid):
                log.info("session_holder_gone", session=s.id, holder_pid=took.holder_pid)
                self.release(s.id)
                released.append(s.id)
        return released


def list_commands(s: Session, since: str | None, limit: int) -> CommandList:
    """Every prompt cycle of the session (agent, keys or person), oldest first; the newest `limit`."""
    records = sorted(s.commands.values(), key=lambda r: r.seq)
    if since is not None:
        after = int(since[1:])
        records = [r for r in records if r.seq > after]
    shown = records[-limit:]
    hint = None
    if len(records) > len(shown):
        hint = f"{len(records) - len(shown)} older commands left out; pass since= or a larger limit."
    elif not shown:
        hint = "No commands yet." if since is None else f"No commands after {since}."
    return CommandList(session_id=s.id, commands=[r.summary() for r in shown], hint=hint)
