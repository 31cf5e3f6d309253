"""Terminals: more shells in one session, each riding the session's ssh ControlMaster.

A session's first terminal ("main") is the Session itself. Every other terminal is one more pane
(a tmux window of the session's tmux session) running a multiplexing client of the session's
master (`ssh -S <ControlPath> -o ControlMaster=no -tt …`): no new TCP connection, no new
authentication (password and 2FA sessions included), a remote pty and login shell of its own. It is
modelled by the same `Session` machinery as the main pane: its own raw pipe-pane log, nonce,
markers, shell integration and command records (stored under the key `<session>@<terminal>`).

What tmux keeps for a terminal lives in pane options (`@sshkeep_term*`), so a new daemon adopts
terminals the way it adopts sessions. The master is the session's: when its ssh dies, every
terminal's client dies with it; `reconnect_session` respawns the terminals (see `reconnected`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import time
from pathlib import Path
from typing import Protocol

import structlog

from sshkeep.common.errors import (
    BadRequest,
    ConnectFailed,
    SessionNotReady,
    TerminalExists,
    TerminalNotFound,
    TmuxError,
)
from sshkeep.common.models.base import MAIN_TERMINAL, TERMINAL_PATTERN
from sshkeep.common.models.jobs import TerminalInfo
from sshkeep.common.paths import Paths
from sshkeep.common.terminal.commandline import NO_SHELL
from sshkeep.daemon.sessions.loggaps import gaps_path, pipe_command
from sshkeep.daemon.sessions.resume import TypedMark, resume, typed_mark
from sshkeep.daemon.sessions.session import Session, terminal_key
from sshkeep.daemon.sessions.store import CommandRecord, Store
from sshkeep.daemon.sessions.tmux import Tmux, pane_exit_status, quote
from sshkeep.daemon.sessions.writerhost import WriterHost

log = structlog.get_logger(__name__)

MAX_TERMINALS = 64
_NAME = re.compile(TERMINAL_PATTERN)
# Pane options of a terminal (the main pane has none of them: `@sshkeep_term` empty means main).
OPT = "@sshkeep_term"
_ADOPT_FIELDS = (
    "#{pane_id}",
    "#{@sshkeep_id}",
    f"#{{{OPT}}}",
    f"#{{{OPT}_nonce}}",
    f"#{{{OPT}_created}}",
    f"#{{{OPT}_shell}}",
    f"#{{{OPT}_job}}",
    f"#{{{OPT}_argv}}",
    f"#{{{OPT}_dropped}}",
    "#{pane_dead}",
    "#{pane_dead_status}",
    "#{pane_dead_signal}",
    "#{pane_pid}",
    "#{pane_dead_time}",
)


def mux_argv(main_argv: list[str], control_path: str, dest: str | None = None) -> list[str]:
    """ssh argv of a terminal: a multiplexing client of the master with a pty and a login shell.

    The fixed options come first (ssh keeps the first value of an option): it may never become a
    master or connect by itself (ProxyCommand=false: with the master gone it fails at once instead
    of asking for a password), and it runs the login shell, not a command.
    """
    from sshkeep.daemon.files.sidechannel import split_ssh_argv  # the side clients' argv rules

    kept, parsed_dest, _ = split_ssh_argv(main_argv)
    return [
        "ssh",
        "-S", control_path,
        "-o", "ControlMaster=no",
        "-o", "ProxyCommand=false",
        "-o", "BatchMode=yes",
        "-o", "ClearAllForwardings=yes",
        "-o", "PermitLocalCommand=no",
        "-o", "RemoteCommand=none",
        "-o", "RequestTTY=force",
        "-o", "LogLevel=ERROR",
        *kept,
        "--",
        dest or parsed_dest or "localhost",
    ]  # fmt: skip


class JobHooks(Protocol):
    """What the manager and a reconnect ask of the jobs (daemon/sessions/jobs.py)."""

    def wants_respawn(self, t: Session) -> bool: ...

    async def reattach(self, sid: str) -> None: ...

    async def adopt(self) -> None: ...

    async def tick(self) -> None: ...

    async def command_finished(self, t: Session, rec: CommandRecord) -> None: ...

    async def forget_session(self, sid: str) -> None: ...


class NoJobs:
    """The hooks before the composition root plugs the jobs in (and in tests of the manager alone)."""

    def wants_respawn(self, t: Session) -> bool:
        return t.job_id is None

    async def reattach(self, sid: str) -> None:
        return None

    async def adopt(self) -> None:
        return None

    async def tick(self) -> None:
        return None

    async def command_finished(self, t: Session, rec: CommandRecord) -> None:
        return None

    async def forget_session(self, sid: str) -> None:
        return None


class Engine(Protocol):
    """What terminals need from the session manager: narrow, so neither module imports the other."""

    @property
    def paths(self) -> Paths: ...
    @property
    def tmux(self) -> Tmux: ...
    @property
    def store(self) -> Store: ...
    @property
    def sessions(self) -> dict[str, Session]: ...
    @property
    def jobs(self) -> JobHooks: ...
    @property
    def writers(self) -> WriterHost: ...

    def get(self, sid: str) -> Session: ...

    async def ensure_ready(self, s: Session, timeout: float) -> None: ...

    def new_session(self, **kw: object) -> Session: ...


class Terminals:
    """Every non-main terminal of the daemon, by key; opened, adopted, respawned and closed here."""

    def __init__(self, manager: Engine) -> None:
        self.m = manager
        self.by_key: dict[str, Session] = {}
        self._opening: set[str] = set()

    # --- lookups ----------------------------------------------------------------------------------

    def of(self, sid: str) -> list[Session]:
        return sorted((t for t in self.by_key.values() if t.id == sid), key=lambda t: t.created_at)

    def get(self, sid: str, name: str | None) -> Session:
        """The terminal `name` of session `sid` (None or "main": the session itself)."""
        main = self.m.get(sid)
        if name is None or name == MAIN_TERMINAL:
            return main
        if not _NAME.match(name):
            raise BadRequest(
                f"{name!r} is not a valid terminal name (lowercase letters, digits, '-' and '_')"
            )
        t = self.by_key.get(terminal_key(sid, name))
        if t is None:
            names = ", ".join([MAIN_TERMINAL, *(x.terminal for x in self.of(sid))])
            raise TerminalNotFound(f"session {sid} has no terminal {name!r} (it has: {names})")
        return t

    def info(self, t: Session) -> TerminalInfo:
        rec = t.current
        return TerminalInfo(
            session_id=t.id,
            terminal=t.terminal,
            state=t.state,
            shell=t.shell,
            created_at=t.created_at,
            running_command_id=rec.command_id if rec else None,
            running_command=rec.command[:80] if rec else None,
            job_id=t.job_id,
            attach=t.attach,
            hint="ssh exited under this terminal; reconnect_session respawns it." if t.dead else None,
        )

    def infos(self, sid: str) -> list[TerminalInfo]:
        return [self.info(t) for t in self.of(sid)]

    def _next_name(self, sid: str) -> str:
        n = 1
        taken = {t.terminal for t in self.of(sid)} | self._opening
        while f"t{n}" in taken or terminal_key(sid, f"t{n}") in taken:
            n += 1
        return f"t{n}"

    # --- open -------------------------------------------------------------------------------------

    def control_path(self, main: Session) -> tuple[str, str | None]:
        from sshkeep.daemon.files.sidechannel import split_ssh_argv

        _, dest, cpath = split_ssh_argv(main.ssh_argv)
        return cpath or str(self.m.paths.control_dir / main.id), dest

    async def open(self, sid: str, name: str | None, timeout: float, job_id: str | None = None) -> Session:
        """Open terminal `name` in session `sid` and wait until its shell is integrated."""
        main = self.m.get(sid)
        await self.m.ensure_ready(main, timeout)
        if main.shell == NO_SHELL and not main.integration_lost:
            raise BadRequest(
                f"session {sid}'s login shell is not sh-compatible, so it cannot hold more terminals",
                hint="Terminals and jobs need bash, zsh, dash or ash; send_command still works in main.",
            )
        name = name or self._next_name(sid)
        key = terminal_key(sid, name)
        if name == MAIN_TERMINAL or key in self.by_key or key in self._opening:
            raise TerminalExists(f"session {sid} already has a terminal {name!r}")
        if len(self.of(sid)) >= MAX_TERMINALS:
            raise BadRequest(
                f"session {sid} holds {MAX_TERMINALS} terminals already",
                hint="close_terminal the ones you no longer need, or cleanup_dead_sessions finished jobs.",
            )
        control, dest = self.control_path(main)
        if not await asyncio.to_thread(Path(control).exists):
            raise SessionNotReady(
                f"session {sid} has no ssh master connection (no control socket at {control})",
                hint="reconnect_session (after ssh exits) starts one.",
            )
        self._opening.add(key)
        try:
            return await self._open(main, name, control, dest, timeout, job_id)
        finally:
            self._opening.discard(key)

    async def _open(
        self, main: Session, name: str, control: str, dest: str | None, timeout: float, job_id: str | None
    ) -> Session:
        sid = main.id
        nonce = secrets.token_hex(8)
        argv = mux_argv(main.ssh_argv, control, dest)
        log_path = self.m.paths.logs_dir / f"{terminal_key(sid, name)}.log"
        os.close(os.open(log_path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        with contextlib.suppress(FileNotFoundError):
            gaps_path(log_path).unlink()  # a closed terminal of the same name left its gaps
        created = time.time()
        await self.m.writers.ensure()
        # One tmux invocation: the new pane is the current one for the commands after new-window,
        # so pipe-pane is attached before tmux reads anything ssh prints; last-window gives the
        # people watching the session the window they had.
        out = await self.m.tmux.run(
            "new-window", "-t", f"={sid}:", "-n", name, "-P", "-F", "#{pane_id}",
            "-e", f"SSHKEEP_SESSION={sid}", "-e", f"SSHKEEP_TERMINAL={name}", "--", *argv,
            ";", "pipe-pane", "-O", pipe_command(log_path, self.m.writers.path),
            ";", "set-option", "-p", OPT, name,
            ";", "set-option", "-p", f"{OPT}_nonce", nonce,
            ";", "set-option", "-p", f"{OPT}_created", f"{created:.3f}",
            ";", "set-option", "-p", f"{OPT}_job", job_id or "",
            ";", "set-option", "-p", f"{OPT}_argv", json.dumps(argv),
            ";", "last-window", "-t", f"={sid}:",
        )  # fmt: skip
        pane_id = out.strip().splitlines()[0] if out.strip() else ""
        if not pane_id.startswith("%"):
            raise TmuxError(f"tmux did not report a pane for terminal {name} of session {sid}")
        t = self.m.new_session(
            id=sid,
            pane_id=pane_id,
            target=main.target,
            connection=main.connection,
            nonce=nonce,
            created_at=created,
            log_path=log_path,
            attach=self.m.paths.attach_command(f"{sid}:{name}"),
            ssh_argv=argv,
            terminal=name,
            job_id=job_id,
        )
        # The master is authenticated already: the setup is typed at once (the remote shell reads it
        # when it starts, as after the L marker of a fresh login).
        t.authenticated = True
        self.by_key[t.key] = t
        await self.m.store.save_session(t.key, 0, 1)
        try:
            await t.send_setup()
            await self._wait_integrated(t, timeout)
        except (ConnectFailed, TmuxError):
            await self._discard(t)
            raise
        log.info("terminal_opened", session=sid, terminal=name, ms=round((time.time() - created) * 1000, 1))
        return t

    async def _wait_integrated(self, t: Session, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        async with t.changed:
            while not t.integrated:
                if t.dead or t.closed:
                    await asyncio.sleep(0.05)
                    words = t.last_words() or "ssh exited"
                    raise ConnectFailed(
                        f"terminal {t.terminal} of session {t.id} got no shell over the session's "
                        f"connection: {words}",
                        hint="The session's ssh master may be gone: get_session shows it; "
                        "reconnect_session starts a fresh one.",
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ConnectFailed(
                        f"terminal {t.terminal} of session {t.id}: no integrated shell within {timeout:g}s"
                        + (f"; it shows:\n{t.last_words()}" if t.last_words() else ""),
                        hint="get_snapshot(terminal=...) shows the terminal; close_terminal removes it.",
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(t.changed.wait(), min(remaining, 0.25))
        with contextlib.suppress(TmuxError):
            await self.m.tmux.command(
                f"set-option -p -t {t.pane_id} {OPT}_shell {quote(t.shell or 'sh')} ; "
                + typed_mark(t.pane_id, t.next_seq - 1)
            )

    # --- close ------------------------------------------------------------------------------------

    async def _discard(self, t: Session) -> None:
        t.closed = True
        with contextlib.suppress(TmuxError):
            await self.m.tmux.command(f"kill-pane -t {t.pane_id}")
        self.by_key.pop(t.key, None)
        t.close_log()
        await self.m.store.forget_session(t.key)
        for path in (t.log_path, gaps_path(t.log_path)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        async with t.changed:
            t.changed.notify_all()

    async def close(self, sid: str, name: str) -> None:
        t = self.get(sid, name)
        if t.terminal == MAIN_TERMINAL:
            raise BadRequest("the main terminal closes with its session: close_session")
        if t.job_id is not None:
            raise BadRequest(
                f"terminal {name} belongs to job {t.job_id}",
                hint="stop_job ends the job; cleanup_dead_sessions removes finished jobs and their "
                "terminals.",
            )
        await self._discard(t)
        log.info("terminal_closed", session=sid, terminal=name)

    async def discard(self, t: Session) -> None:
        """Remove a terminal whatever it runs (a job being cleaned up, a closing session)."""
        await self._discard(t)

    async def close_all(self, sid: str) -> None:
        for t in self.of(sid):
            await self._discard(t)

    # --- adoption and reconnect -------------------------------------------------------------------

    async def pane_ids(self) -> set[str]:
        """The tmux panes that are sessions' other terminals (not their main panes)."""
        lines = await self.m.tmux.command(
            f"list-panes -a -F {quote('#{pane_id}' + chr(9) + '#{' + OPT + '}')}"
        )
        return {line.split("\t", 1)[0] for line in lines if "\t" in line and line.split("\t", 1)[1]}

    async def adopt(self, marks: dict[str, TypedMark]) -> None:
        """Take over the terminals of every adopted session (after a daemon restart); `marks`: the
        panes' typed marks (`typed_marks`)."""
        lines = await self.m.tmux.command(f"list-panes -a -F {quote(chr(9).join(_ADOPT_FIELDS))}")
        for line in lines:
            parts = line.split("\t")
            if len(parts) != len(_ADOPT_FIELDS) or not parts[2]:
                continue
            pane, sid, name, nonce, created, shell, job, argv_json, dropped = parts[:9]
            dead, dead_status, dead_signal, pane_pid, dead_time = parts[9:]
            main = self.m.sessions.get(sid)
            key = terminal_key(sid, name)
            if main is None or key in self.by_key or not _NAME.match(name):
                continue
            t = self.m.new_session(
                id=sid,
                pane_id=pane,
                target=main.target,
                connection=main.connection,
                nonce=nonce,
                created_at=float(created or 0),
                log_path=self.m.paths.logs_dir / f"{key}.log",
                attach=self.m.paths.attach_command(f"{sid}:{name}"),
                ssh_argv=_load_argv(argv_json),
                terminal=name,
                job_id=job or None,
            )
            t.setup_sent = t.authenticated = True
            if shell:
                t.shell, t.integrated, t.x_seen = shell, True, True
            t.dead = dead == "1"
            t.dead_at = (float(dead_time) if dead_time.isdigit() else time.time()) if t.dead else None
            t.dead_status = pane_exit_status(dead_status, dead_signal, pane_pid) if t.dead else None
            t.dropped_before = int(dropped) if dropped.isdigit() else 0
            await resume(t, self.m.store, marks.get(pane))
            self.by_key[key] = t
            await t.scan()
            log.info("terminal_adopted", session=sid, terminal=name, dead=t.dead)

    async def respawn(self, t: Session, timeout: float) -> None:
        """Start a fresh multiplexing client in a terminal whose ssh died (same pane, same log)."""
        main = self.m.get(t.id)
        control, dest = self.control_path(main)
        argv = mux_argv(main.ssh_argv, control, dest)
        ended = t.end_login()
        if ended is not None:
            await self.m.store.save_command(ended)
        t.nonce, t.ssh_argv = secrets.token_hex(8), argv
        cmd = " ".join(quote(a) for a in argv)
        await self.m.tmux.command(
            f"set-option -p -t {t.pane_id} {OPT}_nonce {t.nonce} ; "
            f"set-option -p -t {t.pane_id} {OPT}_argv {quote(json.dumps(argv))} ; "
            f"set-option -p -u -t {t.pane_id} {OPT}_shell ; respawn-pane -k -t {t.pane_id} {cmd}"
        )
        t.dead, t.dead_status, t.dead_at = False, None, None
        t.authenticated = True
        await t.send_setup()
        await self._wait_integrated(t, timeout)
        t.restore_cwd = None
        log.info("terminal_respawned", session=t.id, terminal=t.terminal)

    async def reconnected(self, sid: str, timeout: float) -> list[str]:
        """After reconnect_session: respawn the terminals that should live on; report failures."""
        problems: list[str] = []
        for t in self.of(sid):
            if not t.dead or not self.m.jobs.wants_respawn(t):
                continue
            try:
                await self.respawn(t, timeout)
            except Exception as exc:  # one terminal failing must not fail the reconnect
                log.warning("terminal_respawn_failed", session=sid, terminal=t.terminal, error=str(exc))
                problems.append(f"{t.terminal}: {exc}")
        await self.m.jobs.reattach(sid)
        return problems


def _load_argv(raw: str) -> list[str]:
    try:
        value = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        return []
    return [str(x) for x in value] if isinstance(value, list) else []
