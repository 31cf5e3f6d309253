"""The SessionManager: opens, adopts, watches, reconnects and closes sessions.

Commands in a session are the command runner's (daemon/sessions/commands.py); the composition root
(daemon/server.py) builds both and gives the runner what it needs from here."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import time
from pathlib import Path

import structlog

from sshkeep.common.config import ConfigSource, Connection
from sshkeep.common.errors import (
    BadRequest,
    ConnectFailed,
    SessionDisconnected,
    SessionNotFound,
    SessionNotReady,
    TmuxError,
)
from sshkeep.common.models.base import MAIN_TERMINAL, SESSION_ID_PATTERN
from sshkeep.common.models.sessions import OpenSessionRequest, SessionForHostRequest, SessionInfo
from sshkeep.common.paths import Paths, ensure_private_dir
from sshkeep.common.terminal.commandline import NO_SHELL
from sshkeep.common.terminal.watch import LogWatcher
from sshkeep.daemon.sessions.askpass import AuthBroker, failure_hint
from sshkeep.daemon.sessions.logcap import drop_target, punch
from sshkeep.daemon.sessions.loggaps import gaps_path, pipe_command
from sshkeep.daemon.sessions.login import effective_login
from sshkeep.daemon.sessions.options import (
    PANE_FORMAT,
    SESSION_PANE_FORMAT,
    PaneState,
    SessionOptions,
    parse_pane,
    parse_session_pane,
    set_line,
)
from sshkeep.daemon.sessions.replies import (
    LOGIN_QUESTIONS,
    UNINTEGRATED_HINT,
    disconnect_hint,
    login_hint,
    reconnect_hint,
)
from sshkeep.daemon.sessions.resume import TypedMark, resume, typed_mark, typed_marks
from sshkeep.daemon.sessions.session import QUIET_FOR_QUESTION, SETUP_GRACE, Session
from sshkeep.daemon.sessions.store import CommandRecord, Store
from sshkeep.daemon.sessions.terminals import OPT as TERMINAL_OPT
from sshkeep.daemon.sessions.terminals import JobHooks, NoJobs, Terminals
from sshkeep.daemon.sessions.tmux import Tmux, quote
from sshkeep.daemon.sessions.writerhost import WriterHost

log = structlog.get_logger(__name__)

MONITOR_INTERVAL = 0.5
# While every terminal is idle (no command running, nothing printed for IDLE_AFTER seconds) the
# monitor looks less often: each look costs tmux a pass over every pane, and no one waits on an
# idle terminal. A command sent meanwhile wakes it (an ssh gone since is noticed at once).
IDLE_MONITOR_INTERVAL = 2.0
IDLE_AFTER = 10.0
# Every this many ticks the monitor lists every pane (a vanished one, and a log whose inotify event
# was missed, show only there); in between only the panes that need something: dead or unpiped.
FULL_LISTING_EVERY = 4
# The tmux filter of those panes: ssh exited, or the pipe-pane writer is gone.
_NEEDS_CARE = quote("#{||:#{pane_dead},#{!=:#{pane_pipe},1}}")
# While every log event is one of streaming terminals (their scans held, see pacer.py), the
# watcher leaves the events unread this long at most: what others print waits no longer than that.
MAX_EVENTS_PAUSE = 0.004
REPIPE_BACKOFF = 2.0  # seconds between attempts to re-attach one pane's log
_DESTINATION = re.compile(r"^[A-Za-z0-9_.@%:\[\]-]+$")
_SESSION_ID = re.compile(SESSION_ID_PATTERN)


def _log_key(name: str) -> str:
    """The terminal key of a file in the logs directory (its log or its gap sidecar)."""
    return name[:-4] if name.endswith(".log") else name[:-5] if name.endswith(".gaps") else name


class SessionManager:
    """Everything the API does to sessions goes through here."""

    def __init__(
        self, paths: Paths, config: ConfigSource, tmux: Tmux, store: Store, auth: AuthBroker
    ) -> None:
        self.paths = paths
        self.config = config
        self.tmux = tmux
        self.store = store
        self.auth = auth
        self.writers = WriterHost(tmux, paths.writer_socket)
        self.sessions: dict[str, Session] = {}
        self.terminals = Terminals(self)
        # The jobs (daemon/sessions/jobs.py), plugged in by the composition root.
        self.jobs: JobHooks = NoJobs()
        self._watcher = LogWatcher(paths.logs_dir, self._on_log_change, pause_after=self._events_pause)
        self._monitor: asyncio.Task[None] | None = None
        self._scan_tasks: dict[str, asyncio.Task[None]] = {}
        self._gap_watch: set[Path] = set()  # the logs whose writer drops output (see loggaps.py)
        self._rescan: set[str] = set()
        self._wake = asyncio.Event()  # ends a slow monitor tick early (see IDLE_MONITOR_INTERVAL)
        self._slow = False

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        for d in (self.paths.state_dir, self.paths.logs_dir, self.paths.runtime_dir, self.paths.control_dir):
            ensure_private_dir(d)
        await self.tmux.ensure_server()
        await self.tmux.control()
        self._watcher.start()
        marks = await typed_marks(self.tmux)  # one read, for the sessions and their other terminals
        await self.adopt(marks)
        await self.terminals.adopt(marks)
        await self.jobs.adopt()
        self._monitor = asyncio.create_task(self._monitor_loop(), name="session-monitor")

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        self._watcher.stop()
        for task in list(self._scan_tasks.values()):
            task.cancel()
        for s in self.panes():
            self.store.save_session_soon(s.key, s.scan_pos, s.next_seq)
        await self.store.flush()

    def new_session(self, **kw: object) -> Session:
        s = Session(**kw)  # type: ignore[arg-type]
        s.gaps.watch = self._gap_watch
        s.on_finished = self.command_finished
        s.send_line = self.tmux.command
        return s

    _new_session = new_session

    def panes(self) -> list[Session]:
        """Every terminal of every session: the main ones, then the others."""
        return [*self.sessions.values(), *self.terminals.by_key.values()]

    def dropping(self) -> list[Session]:
        """The open terminals whose log writer drops output now (a full disk)."""
        if not self._gap_watch:
            return []
        out = [s for s in self.panes() if s.gaps.dropping and not s.closed]
        self._gap_watch.intersection_update(s.gaps.path for s in out)  # closed ones are done
        return out

    def pane(self, key: str) -> Session | None:
        """A terminal by its key (a session id for a main terminal, `<session>@<terminal>` else)."""
        return self.sessions.get(key) or self.terminals.by_key.get(key)

    def terminal(self, sid: str, name: str | None = None) -> Session:
        """Terminal `name` of session `sid`; None or "main" is the session itself."""
        return self.terminals.get(sid, name)

    async def adopt(self, marks: dict[str, TypedMark]) -> None:
        """Take over every sshkeep session on our tmux server (after a daemon restart); `marks`:
        the panes' typed marks (`typed_marks`)."""
        lines = await self.tmux.command(f"list-panes -a -F {SESSION_PANE_FORMAT}")
        others = await self.terminals.pane_ids()  # the sessions' other terminals: terminals.py adopts them
        for line in lines:
            row = parse_session_pane(line)
            if row is None or not _SESSION_ID.match(row[1].id) or row[0].pane_id in others:
                continue
            pane, opts = row
            sid = opts.id
            if sid in self.sessions:
                continue
            s = self._new_session(
                id=sid,
                pane_id=pane.pane_id,
                target=opts.target,
                connection=opts.conn,
                nonce=opts.nonce,
                created_at=opts.created,
                log_path=self.paths.logs_dir / f"{sid}.log",
                attach=self.paths.attach_command(sid),
                ssh_argv=opts.argv,
            )
            s.setup_sent = s.authenticated = True
            s.login = await effective_login(s.ssh_argv)
            if opts.shell == NO_SHELL:
                s.shell = opts.shell
            elif opts.shell:
                s.shell, s.integrated, s.x_seen = opts.shell, True, True
            s.dead = pane.dead
            s.dead_at = pane.dead_since() if s.dead else None
            s.dropped_before = opts.dropped
            s.dead_status = int(pane.pane_dead_status) if pane.pane_dead_status.isdigit() else None
            await resume(s, self.store, marks.get(pane.pane_id))
            self.sessions[sid] = s
            await s.scan()
            log.info("session_adopted", session=sid, target=s.target, dead=s.dead)

    def _on_log_change(self, name: str) -> None:
        # A log grew, or its gap sidecar did (a full disk: the writer's running count of what it drops).
        key = _log_key(name)
        s = self.pane(key)
        if s is not None and not s.pacer.held:  # a held scan reads this change with the others
            self._schedule_scan(key)

    def _events_pause(self, names: set[str]) -> float:
        """After a batch of log events that all belong to terminals whose scan is held (streaming
        output): how long the watcher may leave the next events unread (see pacer.py)."""
        held = []
        for name in names:
            s = self.pane(_log_key(name))
            if s is None or not s.pacer.held:
                return 0.0
            held.append(s.pacer.hold)
        return min(MAX_EVENTS_PAUSE, *held)

    def _schedule_scan(self, sid: str) -> None:
        task = self._scan_tasks.get(sid)
        if task is not None and not task.done():
            self._rescan.add(sid)
            return
        self._scan_tasks[sid] = asyncio.create_task(self._scan(sid))

    async def _scan(self, sid: str) -> None:
        while True:
            s = self.pane(sid)
            if s is None:
                return
            before, prompt = s.scan_pos, s.prompt_pos
            try:
                await s.scan()
            except Exception:
                log.exception("scan_failed", session=sid)
            hold = s.pacer.after_scan(s.scan_pos - before, s.current is not None, s.prompt_pos != prompt)
            if hold:  # streaming output: the changes until then are read in one scan (see pacer.py)
                s.pacer.held = True
                self._rescan.discard(sid)
                asyncio.get_running_loop().call_later(hold, self._release, sid)
                return
            if sid not in self._rescan:
                return
            self._rescan.discard(sid)

    def _release(self, sid: str) -> None:
        s = self.pane(sid)
        if s is not None:
            s.pacer.held = False
            self._schedule_scan(sid)

    async def _monitor_loop(self) -> None:
        tick = 0
        while True:
            self._slow = not self._any_active()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(IDLE_MONITOR_INTERVAL if self._slow else MONITOR_INTERVAL):
                    await self._wake.wait()
            self._wake.clear()
            self._slow = False
            tick += 1
            # 200 idle sessions cost a listing of 200 panes twice a second (tmux formatting them,
            # the daemon reading them): most ticks ask tmux only for the panes that need care.
            full = tick % FULL_LISTING_EVERY == 0
            # Only judge sessions that existed when list-panes was sent: a session opened while it
            # ran has a pane the listing may predate, and must not be marked dead for that.
            known = {s.key for s in self.panes()}
            only = "" if full else f"-f {_NEEDS_CARE} "
            try:
                lines = await self.tmux.command(f"list-panes -a {only}-F {PANE_FORMAT}")
            except TmuxError as exc:
                log.warning("monitor_failed", error=exc.message)
                continue
            panes: dict[str, PaneState] = {}
            for line in lines:
                pane = parse_pane(line)
                if pane is not None:
                    panes[pane.pane_id] = pane
            for s in self.panes():
                if s.key not in known or s.closed:
                    continue
                if not full and s.pane_id not in panes:
                    # Alive and piped (the filter lists the others). A missed inotify event must
                    # not hold up a running command until the next full listing.
                    if s.current is not None and (s.scan_pos < s.log_size or s.current_size() != s.log_size):
                        self._schedule_scan(s.key)
                    continue
                info = panes.get(s.pane_id)
                dead = info is None or info.dead
                died = dead and not s.dead
                if died and info is not None and s.dying_size != s.current_size():
                    # ssh's last words may still be on their way through pipe-pane into the log:
                    # the session is disconnected once the log stopped growing (the next poll).
                    s.dying_size = s.current_size()
                    self._schedule_scan(s.key)
                    continue
                if died:
                    s.dead = True
                    s.dead_at = time.time()
                    log.info("session_disconnected", session=s.id, terminal=s.terminal)
                if not dead and info is not None and not info.piped:
                    await self._repipe(s)
                if s.dead and s.dead_status is None and info is not None:
                    # tmux may mark the pane dead (pty closed) a moment before it reaps ssh.
                    s.dead_status = info.exit_status
                # A scan wakes the session's waiters; an idle session (nothing new in its log, a
                # missed inotify event included) needs none: 200 idle sessions cost no tasks.
                if died or s.scan_pos < s.log_size or s.current_size() != s.log_size:
                    self._schedule_scan(s.key)
            await self.jobs.tick()
            await self._enforce_log_caps()

    def _any_active(self) -> bool:
        return any(
            s.current is not None or s.quiet_for() < IDLE_AFTER or (s.dead and s.dead_status is None)
            for s in self.panes()
        )

    async def _repipe(self, s: Session) -> None:
        """Re-attach a pane's log writer that tmux found gone (killed, or a `cat` of an older
        version that exited on a full disk): first record that output was lost there, uncounted."""
        now = time.monotonic()
        if now - s.repiped_at < REPIPE_BACKOFF:
            return
        s.repiped_at = now
        try:
            await asyncio.to_thread(s.gaps.note_unknown, s.current_size())
        except OSError as exc:  # the disk is still full: try again later, before anything is written
            log.warning("log_pipe_gap_unrecorded", session=s.key, error=str(exc))
            return
        try:
            await self.writers.ensure()
            line = f"pipe-pane -O -t {s.pane_id} {quote(pipe_command(s.log_path, self.writers.path))}"
            await self.tmux.command(line)
        except TmuxError as exc:
            log.warning("log_pipe_reattach_failed", session=s.key, error=exc.message)
            return
        log.warning("log_pipe_reattached", session=s.key, offset=s.log_size)

    async def _enforce_log_caps(self) -> None:
        cap = self.config.current().tunables.log_cap_bytes
        for s in self.panes():
            target = drop_target(s.log_size, s.dropped_before, s.scan_pos, cap)
            if target <= s.dropped_before:
                continue
            async with s.output_lock:  # never while a reply reads the output
                ok = await asyncio.to_thread(punch, s.log_path, s.dropped_before, target)
                if ok:
                    s.dropped_before = target
            if not ok:
                log.warning("log_cap_unsupported", session=s.id, path=str(s.log_path))
                continue
            log.info("log_cap_dropped", session=s.id, dropped_before=target)
            with contextlib.suppress(TmuxError):
                if s.terminal == MAIN_TERMINAL:
                    await self.tmux.command(set_line(s.id, dropped=target))
                else:
                    await self.tmux.command(f"set-option -p -t {s.pane_id} {TERMINAL_OPT}_dropped {target}")

    async def command_finished(self, rec: CommandRecord) -> None:
        s = self.pane(rec.session_id)
        self.store.save_soon(rec, (s.key, s.scan_pos, s.next_seq) if s is not None else None)
        if s is not None and s.job_id is not None:
            await self.jobs.command_finished(s, rec)

    # --- lookups ----------------------------------------------------------------------------------

    def get(self, sid: str) -> Session:
        if not _SESSION_ID.match(sid):
            raise BadRequest(
                f"{sid!r} is not a valid session id (expected lowercase letters, digits and '-')"
            )
        s = self.sessions.get(sid)
        if s is None or s.closed:
            raise SessionNotFound(f"no session {sid!r}")
        return s

    def info(self, s: Session) -> SessionInfo:
        """A session's state with its other terminals."""
        out = s.info()
        out.terminals = self.terminals.infos(s.id)
        return out

    async def pane_pid(self, sid: str) -> int | None:
        """The pid of the process in session `sid`'s pane: its ssh (tmux runs the argv directly).

        Asked by tmux session name, so it works while open() has not registered the session yet."""
        try:
            # The session's first window holds its main terminal (other terminals are later windows).
            out = await self.tmux.command(f"display-message -p -t '={sid}:{{start}}' '#{{pane_pid}}'")
        except TmuxError:
            return None
        return int(out[0]) if out and out[0].strip().isdigit() else None

    def infos(self) -> list[SessionInfo]:
        return [self.info(s) for s in sorted(self.sessions.values(), key=lambda x: x.created_at)]

    # --- open / close -----------------------------------------------------------------------------

    def _ssh_argv(self, req: OpenSessionRequest, sid: str, nonce: str) -> tuple[list[str], Connection | None]:
        cfg = self.config.current()
        conn = cfg.lookup(req.host)  # ConfigError (naming entry and field) for a broken entry
        # ssh keeps the FIRST -l and -p it is given: what the caller asked for goes before the
        # entry's own, so an explicit username or port wins over the config.
        extra: list[str] = []
        if req.username is not None:
            if req.username.startswith("-") or not re.match(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$", req.username):
                raise BadRequest(f"username {req.username!r} is not a valid user name")
            extra += ["-l", req.username]
        if req.port is not None:
            extra += ["-p", str(req.port)]
        if conn is not None:
            extra += cfg.ssh_args(conn)
            dest = conn.host
        else:
            if req.host.startswith("-") or not _DESTINATION.match(req.host):
                raise BadRequest(
                    f"host {req.host!r} is neither a config name nor a valid ssh destination",
                    hint="Use a name from list_available_configs, or [user@]host.",
                )
            dest = req.host
            if req.username is not None and "@" in dest:
                # user@host beats -l in ssh: drop the destination's user so the explicit one wins.
                dest = dest.rsplit("@", 1)[1]
        marker = f"printf '\\033]133;L;sk={nonce}\\007'"
        argv = [
            "ssh",
            "-o", "ControlMaster=yes",
            "-o", f"ControlPath={self.paths.control_dir / sid}",
            "-o", "ControlPersist=no",
            *_soft_options(conn),
            # Typed text is data: `~.` after a newline must not be ssh's disconnect escape.
            "-o", "EscapeChar=none",
            "-o", "PermitLocalCommand=yes",
            "-o", f"LocalCommand={marker}",
            *extra,
            "--",
            dest,
        ]  # fmt: skip
        return argv, conn

    def _new_id(self, target: str) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", target.lower()).strip("-")[:24].strip("-") or "s"
        while True:
            sid = f"{slug}-{secrets.token_hex(3)}"
            if sid not in self.sessions:
                return sid

    async def _new_pane(
        self,
        sid: str,
        req: OpenSessionRequest,
        conn: Connection | None,
        argv: list[str],
        env_args: list[str],
        log_path: Path,
        nonce: str,
        created: float,
    ) -> str:
        """The session's tmux session running ssh: one line of tmux commands, so pipe-pane is
        attached before tmux reads anything ssh prints. Returns tmux's output (the pane id).

        Sent through the control client (no tmux process to spawn: a few ms of every open); the
        pane's environment is the server's plus the `-e` words, as from a tmux process of ours."""
        await self.writers.ensure()
        words = [
            "new-session", "-d", "-s", sid, "-x", "200", "-y", "50", "-P", "-F", "#{pane_id}",
            "-e", f"SSHKEEP_SESSION={sid}", *env_args, "--", *argv,
            ";", "pipe-pane", "-O", "-t", f"={sid}:", pipe_command(log_path, self.writers.path),
            *SessionOptions(
                id=sid, nonce=nonce, target=req.host, conn=conn.name if conn else None, created=created,
                argv=argv,
            ).set_args(sid),
        ]  # fmt: skip
        out = await self.tmux.command(" ".join(w if w == ";" else quote(w) for w in words))
        return "\n".join(out)

    async def open(self, req: OpenSessionRequest) -> SessionInfo:
        sid = self._new_id(req.host)
        nonce = secrets.token_hex(8)
        argv, conn = self._ssh_argv(req, sid, nonce)
        log_path = self.paths.logs_dir / f"{sid}.log"
        os.close(os.open(log_path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        for stale in (self.paths.control_dir / sid, gaps_path(log_path)):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        created = time.time()
        env_args: list[str] = []
        # Who ssh logs in as (`ssh -G`, a few ms) matters before ssh starts only when a secret may
        # answer its questions; otherwise it is learnt while ssh logs in (a hundred ms or more),
        # started once the pane is: spawning it beside tmux's new-session slowed that down.
        secrets_first = self.auth.has_secrets(conn)
        login = await effective_login(argv) if secrets_first else None
        for key, value in self.auth.env_for(sid, _secret_conn(conn, login)).items():
            env_args += ["-e", f"{key}={value}"]
        out = await self._new_pane(sid, req, conn, argv, env_args, log_path, nonce, created)
        resolving = None if secrets_first else asyncio.ensure_future(effective_login(argv))
        pane_id = out.strip().splitlines()[0] if out.strip() else ""
        if not pane_id.startswith("%"):
            raise TmuxError(f"tmux did not report a pane for session {sid}")
        s = self._new_session(
            id=sid,
            pane_id=pane_id,
            target=req.host,
            connection=conn.name if conn else None,
            nonce=nonce,
            created_at=created,
            log_path=log_path,
            attach=self.paths.attach_command(sid),
            ssh_argv=argv,
            login=login,
        )
        self.sessions[sid] = s
        self.store.save_session_soon(sid, 0, 1)
        log.info("session_opening", session=sid, target=req.host)
        try:
            info = await self._wait_ready(s, req.timeout)
        except ConnectFailed:
            await self._discard(s)
            raise
        finally:
            if resolving is not None:
                s.login = await resolving
        info.login = s.login
        return info

    async def session_for_host(self, req: SessionForHostRequest) -> SessionInfo:
        """An idle, logged-in session of `req.host` (the newest), else a new one."""
        idle = [
            s
            for s in self.sessions.values()
            if req.host in (s.target, s.connection)
            and not s.dead
            and not s.closed
            and s.integrated
            and s.current is None
            and not s.foreground_busy
        ]
        if idle:
            s = max(idle, key=lambda x: x.created_at)
            return s.info(hint=f"Reused idle session {s.id} of {req.host}.")
        info = await self.open(OpenSessionRequest(host=req.host, timeout=req.timeout))
        if info.question is None and info.hint is None:
            info.hint = f"Opened session {info.session_id} for {req.host}."
        return info

    async def _wait_ready(self, s: Session, timeout: float) -> SessionInfo:
        deadline = time.monotonic() + timeout
        async with s.changed:
            while True:
                if s.integrated:
                    # From here on each command typed is marked in the pane (see resume.py).
                    await self.tmux.command(
                        set_line(s.id, shell=s.shell or "sh") + " ; " + typed_mark(s.pane_id, s.next_seq - 1)
                    )
                    return s.info()
                if s.shell == NO_SHELL:
                    return s.info(hint=UNINTEGRATED_HINT)
                if s.dead:
                    await _log_settled(s)
                    words = s.last_words() or "ssh exited"
                    raise ConnectFailed(f"ssh to {s.target} failed: {words}", hint=failure_hint(words))
                quiet = s.quiet_for()
                if (
                    s.setup_at is not None
                    and s.known_shell is None
                    and not s.x_seen
                    and time.monotonic() - s.setup_at > SETUP_GRACE
                    and quiet >= QUIET_FOR_QUESTION
                ):
                    # The setup lines did not run: not an sh-like shell (fish, a router CLI, a REPL).
                    s.shell = NO_SHELL
                    await self.tmux.command(set_line(s.id, shell=NO_SHELL))
                    log.warning("session_not_integrated", session=s.id)
                    continue
                if quiet >= QUIET_FOR_QUESTION and s.log_size > 0:
                    q = s.pending_question()
                    if q is not None and not s.x_seen and q.kind in LOGIN_QUESTIONS:
                        return s.info(q, hint=login_hint(q, s.id))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    words = s.last_words()
                    raise ConnectFailed(
                        f"no ready shell on {s.target} within {timeout:g}s"
                        + (f"; the terminal shows:\n{words}" if words else ""),
                        hint="Check that the host answers and the login shell is sh-compatible.",
                    )
                step = min(
                    remaining, max(0.05, QUIET_FOR_QUESTION - quiet) if quiet < QUIET_FOR_QUESTION else 0.25
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.changed.wait(), step)

    async def ensure_ready(self, s: Session, timeout: float) -> None:
        if self._slow:
            self._wake.set()  # all was idle: look at the panes now, this one may have lost its ssh
        if s.dead:
            words = s.last_words(3)
            raise SessionDisconnected(
                f"session {s.id} is disconnected (ssh exited"
                + (f" with status {s.dead_status}" if s.dead_status is not None else "")
                + ")"
                + (f": {words}" if words else ""),
                hint=disconnect_hint(words),
            )
        if s.integrated or s.shell == NO_SHELL:
            return
        info = await self._wait_ready(s, max(timeout, 1.0))
        if info.question is not None:
            raise SessionNotReady(
                f"session {s.id} is not logged in yet; the terminal asks: {info.question.text}"
            )

    async def reconnect(self, sid: str, timeout: float = 30.0) -> SessionInfo:
        """Start a fresh ssh in the same pane (same id, same log) after ssh exited."""
        s = self.get(sid)
        if not s.dead:
            raise BadRequest(
                f"session {sid} is still connected",
                hint="reconnect_session is for disconnected sessions only.",
            )
        if not s.ssh_argv:
            raise SessionDisconnected(
                f"session {sid} has no recorded ssh command to restart; close it instead"
            )
        nonce = secrets.token_hex(8)
        argv = [
            f"LocalCommand=printf '\\033]133;L;sk={nonce}\\007'" if a.startswith("LocalCommand=") else a
            for a in s.ssh_argv
        ]
        with contextlib.suppress(FileNotFoundError):
            (self.paths.control_dir / sid).unlink()
        conn = self.config.current().connections.get(s.connection) if s.connection else None
        secret_conn = _secret_conn(conn, s.login)
        env_args = " ".join(f"-e {quote(f'{k}={v}')}" for k, v in self.auth.env_for(sid, secret_conn).items())
        ended = s.end_login()
        if ended is not None:
            await self.store.save_command(ended)
        s.nonce, s.ssh_argv = nonce, argv
        s.authenticated = False
        cmd = " ".join(quote(a) for a in argv)
        await self.tmux.command(
            set_line(sid, nonce=nonce, argv=argv, shell=None)
            + f" ; respawn-pane -k -t {s.pane_id} {env_args} {cmd}"
        )
        # Alive only once the respawn is done: a monitor poll answered before it (pane still dead)
        # would otherwise mark the session dead again and fail this reconnect at once.
        s.dead, s.dead_status, s.dead_at = False, None, None
        log.info("session_reconnecting", session=sid)
        info = await self._wait_ready(s, timeout)
        if s.integrated and s.restore_cwd is not None and s.cwd is None:
            # The first prompt's W marker (where the new shell is) may arrive a moment after its D.
            async with s.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.changed.wait_for(lambda: s.cwd is not None or s.dead), 1.0)
        if s.integrated:
            problems = await self.terminals.reconnected(sid, timeout)
            info = self.info(s)
            if problems:
                info.hint = "Some terminals could not be respawned: " + "; ".join(problems)
        if info.question is None:
            info.hint = " ".join(x for x in (info.hint, reconnect_hint(s.restore_cwd, s.cwd)) if x)
        s.restore_cwd = None
        return info

    async def _discard(self, s: Session) -> None:
        await self.jobs.forget_session(s.id)
        await self.terminals.close_all(s.id)
        with contextlib.suppress(TmuxError):
            await self.tmux.command(f"kill-session -t ={s.id}")
        self.sessions.pop(s.id, None)
        s.close_log()
        self.auth.forget(s.id)
        await self.store.forget_session(s.id)
        for path in (s.log_path, gaps_path(s.log_path), self.paths.control_dir / s.id):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def close(self, sid: str) -> None:
        s = self.get(sid)  # a session being closed is not found: one concurrent close wins
        s.closed = True
        await self._discard(s)
        async with s.changed:
            s.changed.notify_all()
        log.info("session_closed", session=sid)


async def _log_settled(s: Session, limit: float = 1.5) -> None:
    """Wait (briefly) until what a dead ssh printed is in its log: the pipe-pane writer may still be
    starting (a Python process) when a fast failure (an unknown host) has already ended ssh."""
    deadline = time.monotonic() + limit
    last = -1
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        size = s.current_size()
        if size > 0 and size == last:
            return
        last = size


# sshkeep's defaults that a connection's own `ssh_options` may replace: how soon a dead network
# path is noticed, how long a connect may take (ssh keeps the first value it is given of each).
SOFT_OPTIONS = {"ServerAliveInterval": "15", "ServerAliveCountMax": "4", "ConnectTimeout": "15"}


def _soft_options(conn: Connection | None) -> list[str]:
    out: list[str] = []
    for key, value in SOFT_OPTIONS.items():
        if conn is None or not conn.has_option(key):
            out += ["-o", f"{key}={value}"]
    return out


def _secret_conn(conn: Connection | None, login: str | None) -> Connection | None:
    """The entry whose secret may answer this login: none when an explicit username replaced the
    entry's user (the entry's password belongs to its own user, never to another)."""
    if conn is None or not conn.user or login is None or "@" not in login:
        return conn
    return conn if login.split("@", 1)[0] == conn.user else None
