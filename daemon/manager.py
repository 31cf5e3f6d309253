"""The SessionManager: opens, adopts, drives and closes sessions; runs commands in them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shlex
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from common.config import ConfigSource, Connection
from common.errors import (
    BadRequest,
    CommandNotFound,
    ConnectFailed,
    SessionBusy,
    SessionDisconnected,
    SessionNotFound,
    SessionNotReady,
    TmuxError,
)
from common.models import (
    SESSION_ID_PATTERN,
    CommandResult,
    OpenSessionRequest,
    Question,
    SendKeysResult,
    SessionInfo,
    Snapshot,
    WaitForResult,
)
from common.paths import Paths, ensure_private_dir
from daemon.askpass import AuthBroker, failure_hint
from daemon.keys import keys_command
from daemon.logcap import drop_target, punch
from daemon.markers import strip_markers
from daemon.render import render, split_lines
from daemon.session import QUIET_FOR_QUESTION, Session
from daemon.shellinit import SHELLS_WITH_HOOKS, START_FUNCTION
from daemon.store import CommandRecord, Store
from daemon.tmux import Tmux, quote
from daemon.watch import LogWatcher

log = structlog.get_logger(__name__)

Progress = Callable[[float, str], Awaitable[None]]

FIRST_REPLY_CHARS = 20_000
DEFAULT_PAGE_LINES = 1000
PASTE_THRESHOLD = 4096
POSIX_LINE_LIMIT = 900
NO_SHELL = "none"
SETUP_GRACE = 4.0
QUIET_DONE = 1.0
UNINTEGRATED_HINT = (
    "This login shell is not sh-compatible, so sshkeep could not install its markers: a command counts "
    "as done after 1 s of quiet output, and exit codes are unknown (exit_code is null)."
)
DEFAULT_LOG_CAP_MB = 256
MONITOR_INTERVAL = 0.5
# Before the shell is integrated only these are questions; a bare remote prompt is not.
LOGIN_QUESTIONS = frozenset({"password", "passphrase", "host_key", "otp", "confirm"})
_DESTINATION = re.compile(r"^[A-Za-z0-9_.@%:\[\]-]+$")
_SESSION_ID = re.compile(SESSION_ID_PATTERN)

WAITING_HINT = (
    'The command waits for input: answer with send_keys (e.g. ["y", "Enter"]), then follow it with '
    "get_command(wait=...); or stop it with interrupt_command."
)


class SessionManager:
    """Everything the API does to sessions goes through here."""

    def __init__(self, paths: Paths, config: ConfigSource) -> None:
        self.paths = paths
        self.config = config
        self.tmux = Tmux(paths.tmux_args, paths.runtime_dir / "tmux.conf")
        self.store = Store(paths.db_file)
        self.auth = AuthBroker(paths, config)
        self.sessions: dict[str, Session] = {}
        self._watcher = LogWatcher(paths.logs_dir, self._on_log_change)
        self._monitor: asyncio.Task[None] | None = None
        self._scan_tasks: dict[str, asyncio.Task[None]] = {}
        self._rescan: set[str] = set()

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        for d in (self.paths.state_dir, self.paths.logs_dir, self.paths.runtime_dir, self.paths.control_dir):
            ensure_private_dir(d)
        await self.tmux.ensure_server()
        await self.tmux.control()
        self._watcher.start()
        await self.adopt()
        self._monitor = asyncio.create_task(self._monitor_loop(), name="session-monitor")

    async def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._monitor
        self._watcher.stop()
        for task in list(self._scan_tasks.values()):
            task.cancel()
        await self.store.flush()
        for s in self.sessions.values():
            await self.store.save_session(s.id, s.scan_pos, s.next_seq)
        await self.tmux.close()
        self.store.close()

    def _new_session(self, **kw: object) -> Session:
        s = Session(**kw)  # type: ignore[arg-type]
        s.on_finished = self._command_finished
        s.send_line = self.tmux.command
        return s

    async def adopt(self) -> None:
        """Take over every sshkeep session on our tmux server (after a daemon restart)."""
        fmt = "\t".join(
            [
                "#{pane_id}",
                "#{@sshkeep_id}",
                "#{@sshkeep_nonce}",
                "#{@sshkeep_target}",
                "#{@sshkeep_conn}",
                "#{@sshkeep_created}",
                "#{@sshkeep_shell}",
                "#{pane_dead}",
                "#{pane_dead_status}",
                "#{@sshkeep_argv}",
                "#{@sshkeep_dropped}",
                "#{pane_dead_time}",
            ]
        )
        lines = await self.tmux.command(f"list-panes -a -F {quote(fmt)}")
        for line in lines:
            parts = line.split("\t")
            if len(parts) != 12 or not parts[1] or not _SESSION_ID.match(parts[1]):
                continue
            (
                pane,
                sid,
                nonce,
                target,
                conn,
                created,
                shell,
                dead,
                dead_status,
                argv_json,
                dropped,
                dead_time,
            ) = parts
            if sid in self.sessions:
                continue
            s = self._new_session(
                id=sid,
                pane_id=pane,
                target=target,
                connection=conn or None,
                nonce=nonce,
                created_at=float(created or 0),
                log_path=self.paths.logs_dir / f"{sid}.log",
                attach=self.paths.attach_command(sid),
                ssh_argv=_load_argv(argv_json),
            )
            s.setup_sent = s.authenticated = True
            if shell == NO_SHELL:
                s.shell = shell
            elif shell:
                s.shell, s.integrated, s.x_seen = shell, True, True
            s.dead = dead == "1"
            # tmux knows when ssh exited, so a daemon restart does not reset the reaper's clock.
            s.dead_at = (float(dead_time) if dead_time.isdigit() else time.time()) if s.dead else None
            s.dropped_before = int(dropped) if dropped.isdigit() else 0
            s.dead_status = int(dead_status) if dead_status.isdigit() else None
            saved = await self.store.load_session(sid)
            records = await self.store.commands(sid)
            s.commands = {r.command_id: r for r in records}
            running = [r for r in records if r.out_end is None and r.status in ("running", "waiting_input")]
            if running:
                s.current = running[-1]
            if saved is not None:
                s.scan_pos, s.next_seq = saved
            s.next_seq = max([s.next_seq, *(r.seq + 1 for r in records)])
            if s.current is not None:
                s.scan_pos = min(s.scan_pos, s.current.sent_pos)
            self.sessions[sid] = s
            await s.scan()
            log.info("session_adopted", session=sid, target=target, dead=s.dead)

    def _on_log_change(self, name: str) -> None:
        sid = name[:-4] if name.endswith(".log") else name
        if sid in self.sessions:
            self._schedule_scan(sid)

    def _schedule_scan(self, sid: str) -> None:
        task = self._scan_tasks.get(sid)
        if task is not None and not task.done():
            self._rescan.add(sid)
            return
        self._scan_tasks[sid] = asyncio.create_task(self._scan(sid))

    async def _scan(self, sid: str) -> None:
        while True:
            s = self.sessions.get(sid)
            if s is None:
                return
            try:
                await s.scan()
            except Exception:
                log.exception("scan_failed", session=sid)
            if sid not in self._rescan:
                return
            self._rescan.discard(sid)

    async def _monitor_loop(self) -> None:
        fmt = quote("#{pane_id}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}\t#{pane_pid}")
        while True:
            await asyncio.sleep(MONITOR_INTERVAL)
            # Only judge sessions that existed when list-panes was sent: a session opened while it
            # ran has a pane the listing may predate, and must not be marked dead for that.
            known = set(self.sessions)
            try:
                lines = await self.tmux.command(f"list-panes -a -F {fmt}")
            except TmuxError as exc:
                log.warning("monitor_failed", error=exc.message)
                continue
            panes = {}
            for line in lines:
                parts = line.split("\t")
                if len(parts) == 5:
                    panes[parts[0]] = parts
            for s in list(self.sessions.values()):
                if s.id not in known:
                    continue
                info = panes.get(s.pane_id)
                dead = info is None or info[1] == "1"
                if dead and not s.dead:
                    s.dead = True
                    s.dead_at = time.time()
                    log.info("session_disconnected", session=s.id)
                if s.dead and s.dead_status is None and info is not None:
                    # tmux may mark the pane dead (pty closed) a moment before it reaps ssh.
                    s.dead_status = _exit_status(info[2], info[3], info[4])
                self._schedule_scan(s.id)
            await self._enforce_log_caps()

    def log_cap_bytes(self) -> int:
        raw = self.config.current().settings.get("log_cap_mb", DEFAULT_LOG_CAP_MB)
        try:
            return int(float(raw) * 1024 * 1024)
        except (TypeError, ValueError):
            return DEFAULT_LOG_CAP_MB * 1024 * 1024

    async def _enforce_log_caps(self) -> None:
        cap = self.log_cap_bytes()
        for s in list(self.sessions.values()):
            target = drop_target(s.log_size, s.dropped_before, s.scan_pos, cap)
            if target <= s.dropped_before:
                continue
            ok = await asyncio.to_thread(punch, s.log_path, s.dropped_before, target)
            if not ok:
                log.warning("log_cap_unsupported", session=s.id, path=str(s.log_path))
                continue
            log.info("log_cap_dropped", session=s.id, dropped_before=target)
            s.dropped_before = target
            with contextlib.suppress(TmuxError):
                await self.tmux.command(f"set-option -t ={s.id}: @sshkeep_dropped {target}")

    async def _command_finished(self, rec: CommandRecord) -> None:
        s = self.sessions.get(rec.session_id)
        self.store.save_soon(rec, (s.id, s.scan_pos, s.next_seq) if s is not None else None)

    # --- lookups ----------------------------------------------------------------------------------

    def get(self, sid: str) -> Session:
        if not _SESSION_ID.match(sid):
            raise BadRequest(
                f"{sid!r} is not a valid session id (expected lowercase letters, digits and '-')"
            )
        s = self.sessions.get(sid)
        if s is None:
            raise SessionNotFound(f"no session {sid!r}")
        return s

    def infos(self) -> list[SessionInfo]:
        return [s.info() for s in sorted(self.sessions.values(), key=lambda x: x.created_at)]

    # --- open / close -----------------------------------------------------------------------------

    def _ssh_argv(self, req: OpenSessionRequest, sid: str, nonce: str) -> tuple[list[str], Connection | None]:
        cfg = self.config.current()
        conn = cfg.lookup(req.host)  # ConfigError (naming entry and field) for a broken entry
        if conn is not None:
            extra = cfg.ssh_args(conn)
            dest = conn.host
        else:
            if req.host.startswith("-") or not _DESTINATION.match(req.host):
                raise BadRequest(
                    f"host {req.host!r} is neither a config name nor a valid ssh destination",
                    hint="Use a name from list_available_configs, or [user@]host.",
                )
            extra = []
            dest = req.host
        if req.username is not None:
            if req.username.startswith("-") or not re.match(r"^[A-Za-z0-9_.][A-Za-z0-9_.@-]*$", req.username):
                raise BadRequest(f"username {req.username!r} is not a valid user name")
            extra += ["-l", req.username]
        if req.port is not None:
            extra += ["-p", str(req.port)]
        marker = f"printf '\\033]133;L;sk={nonce}\\007'"
        argv = [
            "ssh",
            "-o", "ControlMaster=yes",
            "-o", f"ControlPath={self.paths.control_dir / sid}",
            "-o", "ControlPersist=no",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
            "-o", "ConnectTimeout=15",
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

    async def open(self, req: OpenSessionRequest) -> SessionInfo:
        sid = self._new_id(req.host)
        nonce = secrets.token_hex(8)
        argv, conn = self._ssh_argv(req, sid, nonce)
        log_path = self.paths.logs_dir / f"{sid}.log"
        os.close(os.open(log_path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        with contextlib.suppress(FileNotFoundError):
            (self.paths.control_dir / sid).unlink()
        created = time.time()
        env_args: list[str] = []
        for key, value in self.auth.env_for(sid, conn).items():
            env_args += ["-e", f"{key}={value}"]
        # One tmux invocation: pipe-pane is attached before tmux reads anything ssh prints.
        out = await self.tmux.run(
            "new-session", "-d", "-s", sid, "-x", "200", "-y", "50", "-P", "-F", "#{pane_id}",
            "-e", f"SSHKEEP_SESSION={sid}", *env_args, "--", *argv,
            ";", "pipe-pane", "-O", "-t", f"={sid}:", f"exec cat >> {shlex.quote(str(log_path))}",
            ";", "set-option", "-t", f"={sid}:", "@sshkeep_id", sid,
            ";", "set-option", "-t", f"={sid}:", "@sshkeep_nonce", nonce,
            ";", "set-option", "-t", f"={sid}:", "@sshkeep_target", req.host,
            ";", "set-option", "-t", f"={sid}:", "@sshkeep_conn", conn.name if conn else "",
            ";", "set-option", "-t", f"={sid}:", "@sshkeep_created", f"{created:.3f}",
            ";", "set-option", "-t", f"={sid}:", "@sshkeep_argv", json.dumps(argv),
        )  # fmt: skip
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
        )
        self.sessions[sid] = s
        await self.store.save_session(sid, 0, 1)
        log.info("session_opening", session=sid, target=req.host)
        try:
            return await self._wait_ready(s, req.timeout)
        except ConnectFailed:
            await self._discard(s)
            raise

    async def _wait_ready(self, s: Session, timeout: float) -> SessionInfo:
        deadline = time.monotonic() + timeout
        async with s.changed:
            while True:
                if s.integrated:
                    await self.tmux.command(f"set-option -t ={s.id}: @sshkeep_shell {quote(s.shell or 'sh')}")
                    return s.info()
                if s.shell == NO_SHELL:
                    return s.info(hint=UNINTEGRATED_HINT)
                if s.dead:
                    await asyncio.sleep(0.05)
                    words = s.last_words() or "ssh exited"
                    raise ConnectFailed(f"ssh to {s.target} failed: {words}", hint=failure_hint(words))
                quiet = s.quiet_for()
                if (
                    s.setup_at is not None
                    and not s.x_seen
                    and time.monotonic() - s.setup_at > SETUP_GRACE
                    and quiet >= QUIET_FOR_QUESTION
                ):
                    # The setup lines did not run: not an sh-like shell (fish, a router CLI, a REPL).
                    s.shell = NO_SHELL
                    await self.tmux.command(f"set-option -t ={s.id}: @sshkeep_shell {NO_SHELL}")
                    log.warning("session_not_integrated", session=s.id)
                    continue
                if quiet >= QUIET_FOR_QUESTION and s.log_size > 0:
                    q = s.pending_question()
                    if q is not None and not s.x_seen and q.kind in LOGIN_QUESTIONS:
                        return s.info(q, hint=_login_hint(q))
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

    async def _ensure_ready(self, s: Session, timeout: float) -> None:
        if s.dead:
            raise SessionDisconnected(
                f"session {s.id} is disconnected (ssh exited"
                + (f" with status {s.dead_status}" if s.dead_status is not None else "")
                + ")"
                + (f": {s.last_words(3)}" if s.last_words(3) else "")
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
        env_args = " ".join(f"-e {quote(f'{k}={v}')}" for k, v in self.auth.env_for(sid, conn).items())
        if s.current is not None:
            s.current.status = "disconnected"
            s.current.ended_at = time.time()
            await self.store.save_command(s.current)
            s.current = None
        s.nonce, s.ssh_argv = nonce, argv
        s.integrated = s.x_seen = s.authenticated = s.setup_sent = False
        s.shell, s.foreground_busy = None, False
        s.scan_pos = s.current_size()
        cmd = " ".join(quote(a) for a in argv)
        await self.tmux.command(
            f"set-option -t ={sid}: @sshkeep_nonce {nonce} ; "
            f"set-option -t ={sid}: @sshkeep_argv {quote(json.dumps(argv))}"
            f" ; set-option -u -t ={sid}: @sshkeep_shell ; respawn-pane -k -t {s.pane_id} {env_args} {cmd}"
        )
        # Alive only once the respawn is done: a monitor poll answered before it (pane still dead)
        # would otherwise mark the session dead again and fail this reconnect at once.
        s.dead, s.dead_status, s.dead_at = False, None, None
        log.info("session_reconnecting", session=sid)
        return await self._wait_ready(s, timeout)

    async def _discard(self, s: Session) -> None:
        with contextlib.suppress(TmuxError):
            await self.tmux.command(f"kill-session -t ={s.id}")
        self.sessions.pop(s.id, None)
        self.auth.forget(s.id)
        await self.store.forget_session(s.id)
        for path in (s.log_path, self.paths.control_dir / s.id):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    async def close(self, sid: str) -> None:
        s = self.get(sid)
        s.closed = True
        await self._discard(s)
        async with s.changed:
            s.changed.notify_all()
        log.info("session_closed", session=sid)

    # --- commands ---------------------------------------------------------------------------------

    async def send_command(
        self, sid: str, command: str, timeout: float, progress: Progress | None = None
    ) -> CommandResult:
        s = self.get(sid)
        await self._ensure_ready(s, timeout)
        if s.current is not None:
            raise SessionBusy(
                f"session {sid} is still running command {s.current.command_id} ({s.current.command[:60]!r})"
            )
        if s.foreground_busy:
            raise SessionBusy(f"session {sid} is running something typed with send_keys")
        if "\x00" in command:
            raise BadRequest("command contains a NUL byte")
        text = typed_text(command.rstrip("\n"), s.shell)
        seq = s.next_seq
        s.next_seq += 1
        rec = CommandRecord(
            session_id=sid,
            command_id=f"c{seq}",
            seq=seq,
            command=command,
            status="running",
            exit_code=None,
            sent_pos=s.current_size(),
            skip_newlines=text.count("\n") + 1,
            out_start=None,
            out_end=None,
            started_at=time.time(),
        )
        s.current = rec
        s.commands[rec.command_id] = rec
        s.interrupt_requested = False
        self.store.save_soon(rec, (sid, s.scan_pos, s.next_seq))
        try:
            await self._type(s, text)
        except TmuxError:
            s.current = None
            rec.status = "failed"
            await self.store.save_command(rec)
            raise
        await self._wait_command(s, rec, timeout, progress)
        return await self._result(s, rec, first=True)

    async def _type(self, s: Session, text: str) -> None:
        if "\n" in text or len(text) >= PASTE_THRESHOLD:
            buf = f"sk-{s.id}"
            await self.tmux.run("load-buffer", "-b", buf, "-", stdin=text.encode())
            await self.tmux.command(
                f"paste-buffer -d -p -b {buf} -t {s.pane_id} ; send-keys -t {s.pane_id} Enter"
            )
        else:
            await self.tmux.command(
                f"send-keys -t {s.pane_id} -l -- {quote(text)} ; send-keys -t {s.pane_id} Enter"
            )

    async def _wait_command(
        self, s: Session, rec: CommandRecord, timeout: float, progress: Progress | None = None
    ) -> Question | None:
        """Wait until the command ends, the session dies, a question shows, or time is up."""
        start = time.monotonic()
        deadline = start + timeout
        next_progress = start + 1.0
        async with s.changed:
            while True:
                if rec.out_end is not None or s.dead or s.closed:
                    return None
                now = time.monotonic()
                quiet = s.quiet_for()
                if s.shell == NO_SHELL and quiet >= QUIET_DONE and s.log_size > rec.sent_pos:
                    await self._finish_by_quiet(s, rec)
                    return None
                if quiet >= QUIET_FOR_QUESTION:
                    q = await self._question(s)
                    if q is not None and not (s.shell == NO_SHELL and q.kind in ("prompt", "continuation")):
                        return q
                if now >= deadline:
                    return None
                if progress is not None and now >= next_progress:
                    next_progress = now + 1.0
                    await progress(now - start, f"{rec.command_id} running for {now - start:.0f}s")
                step = deadline - now
                step = min(step, QUIET_FOR_QUESTION - quiet if quiet < QUIET_FOR_QUESTION else 0.25)
                if progress is not None:
                    step = min(step, max(0.01, next_progress - now))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.changed.wait(), max(0.01, step))

    async def _finish_by_quiet(self, s: Session, rec: CommandRecord) -> None:
        """Unintegrated shell: the command counts as done once output has been quiet a while."""
        end = s.log_size
        data = s.read_log(rec.sent_pos, end)
        last_nl = data.rfind(b"\n")
        rec.out_start = s._after_echo(rec, end)
        # What follows the last line end is the shell's next prompt, not output.
        rec.out_end = max(rec.out_start, rec.sent_pos + last_nl + 1 if last_nl != -1 else end)
        rec.status = "interrupted" if s.interrupt_requested else "completed"
        rec.ended_at = time.time()
        s.current = None
        s.interrupt_requested = False
        await self._command_finished(rec)

    async def _question(self, s: Session) -> Question | None:
        alt = False
        with contextlib.suppress(TmuxError):
            out = await self.tmux.command(f"display-message -p -t {s.pane_id} '#{{alternate_on}}'")
            alt = bool(out) and out[0].strip() == "1"
        return s.pending_question(alternate_on=alt)

    async def _result(
        self,
        s: Session,
        rec: CommandRecord,
        *,
        first: bool = False,
        offset: int = 0,
        limit: int | None = None,
    ) -> CommandResult:
        question: Question | None = None
        hint: str | None = None
        status = rec.status
        if rec.out_end is None and rec.status in ("running", "waiting_input"):
            if s.dead:
                status = "disconnected"
                hint = "ssh exited while the command ran; reconnect_session starts a new ssh, close_session ends it."  # noqa: E501
            elif s.closed:
                status = "failed"
                hint = "The session was closed."
            else:
                if s.quiet_for() >= QUIET_FOR_QUESTION:
                    question = await self._question(s)
                status = "waiting_input" if question is not None else "running"
                hint = (
                    WAITING_HINT
                    if question is not None
                    else f"Still running: get_command(session_id={s.id!r}, command_id={rec.command_id!r}, "
                    "wait=30) follows it; interrupt_command stops it."
                )
        elif s.shell == NO_SHELL:
            hint = UNINTEGRATED_HINT
        elif status == "interrupted":
            hint = "The command was interrupted (Ctrl-C); the session is ready for the next command."
        lines = await s.output_lines(rec)
        total = len(lines)
        truncated: str | None = None
        if first:
            page, next_offset, truncated = _first_page(lines)
            out_offset = 0
        else:
            if offset < 0:
                raise BadRequest("offset must be >= 0")
            lim = limit if limit is not None else DEFAULT_PAGE_LINES
            page = lines[offset : offset + lim]
            next_offset = offset + len(page) if offset + len(page) < total else None
            out_offset = offset
        if next_offset is not None and hint is None:
            hint = (
                f"More output: get_command(session_id={s.id!r}, command_id={rec.command_id!r}, "
                f"offset={next_offset})."
            )
        return CommandResult(
            session_id=s.id,
            command_id=rec.command_id,
            command=rec.command,
            status=status,  # type: ignore[arg-type]
            exit_code=rec.exit_code,
            output="\n".join(page),
            offset=out_offset,
            next_offset=next_offset,
            has_more=next_offset is not None,
            total_lines=total,
            truncated=truncated,
            question=question,
            hint=hint,
            dropped_bytes=s.dropped_bytes(rec),
            started_at=rec.started_at,
            ended_at=rec.ended_at,
        )

    def _record(self, s: Session, command_id: str | None) -> CommandRecord:
        if command_id is None:
            if s.current is not None:
                return s.current
            if not s.commands:
                raise CommandNotFound(f"session {s.id} has run no command yet")
            return max(s.commands.values(), key=lambda r: r.seq)
        rec = s.commands.get(command_id)
        if rec is None:
            raise CommandNotFound(f"session {s.id} has no command {command_id!r}")
        return rec

    async def get_command(
        self,
        sid: str,
        command_id: str | None,
        offset: int = 0,
        limit: int | None = None,
        wait: float = 0.0,
        progress: Progress | None = None,
    ) -> CommandResult:
        s = self.get(sid)
        rec = self._record(s, command_id)
        if wait > 0 and rec.out_end is None:
            await self._wait_command(s, rec, wait, progress)
        if offset == 0 and limit is None:
            return await self._result(s, rec, first=True)
        return await self._result(s, rec, offset=offset, limit=limit)

    async def interrupt(self, sid: str, timeout: float = 5.0) -> CommandResult:
        s = self.get(sid)
        if s.dead:
            raise SessionDisconnected(f"session {sid} is disconnected")
        rec = s.current
        s.interrupt_requested = rec is not None
        await self.tmux.command(f"send-keys -t {s.pane_id} C-c")
        # Quiet time counts from the keys: the question that was pending is not the answer to them.
        s.last_growth = time.monotonic()
        if rec is None:
            if not s.commands:
                raise CommandNotFound(f"session {sid} has no running command (Ctrl-C was sent anyway)")
            return await self._result(s, self._record(s, None))
        await self._wait_command(s, rec, timeout)
        if rec.out_end is None and not s.dead:
            # Some programs ignore one Ctrl-C (or sit in a prompt): try once more, then report.
            await self.tmux.command(f"send-keys -t {s.pane_id} C-c")
            s.last_growth = time.monotonic()
            await self._wait_command(s, rec, 2.0)
        return await self._result(s, rec, first=True)

    async def send_keys(self, sid: str, keys: list[str]) -> SendKeysResult:
        s = self.get(sid)
        if s.dead:
            raise SessionDisconnected(f"session {sid} is disconnected; keys were not sent")
        line = keys_command(s.pane_id, keys)
        if not line:
            raise BadRequest("keys holds only empty strings")
        if "\n" in line:
            raise BadRequest('a key item contains a newline: send each line as text followed by "Enter"')
        await self.tmux.command(line)
        # A question pending before these keys must not be reported again before the terminal reacts.
        s.last_growth = time.monotonic()
        rec = s.current
        return SendKeysResult(
            session_id=sid,
            sent=len([k for k in keys if k]),
            running_command_id=rec.command_id if rec else None,
            hint=(
                f"Follow it with get_command(session_id={sid!r}, command_id={rec.command_id!r}, wait=10)."
                if rec
                else "get_snapshot shows the screen."
            ),
        )

    async def wait_for(
        self, sid: str, pattern: str, timeout: float, since: int | None = None
    ) -> WaitForResult:
        """Wait until new output matches `pattern`, the running command ends, or time is up."""
        s = self.get(sid)
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise BadRequest(f"pattern {pattern!r} is not a valid regular expression: {exc}") from exc
        start_pos = s.current_size() if since is None else max(s.dropped_before, min(since, s.current_size()))
        rec = s.current
        deadline = time.monotonic() + timeout
        searched_to = start_pos
        carry = ""
        async with s.changed:
            while True:
                end = s.scan_pos
                if end > searched_to:
                    text = carry + render(strip_markers(s.read_log(searched_to, end)))
                    lines = split_lines(text)
                    searched_to = end
                    for i, line in enumerate(lines):
                        if regex.search(line):
                            return WaitForResult(
                                session_id=sid,
                                matched=True,
                                pattern=pattern,
                                line=line,
                                context="\n".join(lines[max(0, i - 3) : i + 4]),
                                running_command_id=s.current.command_id if s.current else None,
                                command_status="running" if s.current else None,
                                searched_to=searched_to,
                            )
                    # Only an unfinished last line continues in the next chunk.
                    carry = lines[-1] if lines and not text.endswith("\n") else ""
                ended = rec is not None and rec.out_end is not None
                if ended or s.dead or s.closed or time.monotonic() >= deadline:
                    status = rec.status if ended and rec is not None else ("disconnected" if s.dead else None)
                    why = (
                        "the command ended" if ended else ("ssh exited" if s.dead else f"{timeout:g}s passed")
                    )
                    return WaitForResult(
                        session_id=sid,
                        matched=False,
                        pattern=pattern,
                        running_command_id=rec.command_id if rec else None,
                        command_status=status,  # type: ignore[arg-type]
                        searched_to=searched_to,
                        hint=f"No match: {why}. get_snapshot shows the screen; wait_for again waits longer.",
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.changed.wait(), max(0.01, min(0.5, deadline - time.monotonic())))

    async def snapshot(self, sid: str, lines: int | None = None) -> Snapshot:
        s = self.get(sid)
        start = f" -S -{lines}" if lines else ""
        try:
            screen = await self.tmux.command(f"capture-pane -p -J -t {s.pane_id}{start}")
            info = await self.tmux.command(
                f"display-message -p -t {s.pane_id} '#{{cursor_x}} #{{cursor_y}} #{{alternate_on}}'"
            )
        except TmuxError as exc:
            raise SessionNotFound(f"session {sid}'s pane is gone ({exc.message})") from exc
        while screen and not screen[-1].strip():
            screen.pop()
        cx, cy, alt = [*info[0].split(), "0", "0", "0"][:3] if info else ("0", "0", "0")
        return Snapshot(
            session_id=sid,
            screen="\n".join(line.rstrip() for line in screen),
            lines=len(screen),
            cursor_x=int(cx),
            cursor_y=int(cy),
            alternate_screen=alt == "1",
            state=s.state,
        )


def typed_text(command: str, shell: str | None) -> str:
    """What to type for `command` so the shell runs it as one unit and marks its start."""
    if shell == NO_SHELL:
        return command  # typed exactly as given: we cannot know this shell's syntax
    if shell in SHELLS_WITH_HOOKS:
        return "{\n" + command + "\n}" if "\n" in command else command
    if any(len(line.encode()) > POSIX_LINE_LIMIT for line in command.split("\n")):
        # dash reads through the tty's canonical mode (lines cut at 4095 bytes) and busybox ash's
        # editor cuts at 1024: build the command in a variable from short quoted lines, then eval.
        pieces = [command[i : i + 200] for i in range(0, len(command), 200)]
        lines = [f"__sk_x={shlex.quote(pieces[0])}"]
        lines += [f'__sk_x="$__sk_x"{shlex.quote(p)}' for p in pieces[1:]]
        return f"{START_FUNCTION}; {{\n" + "\n".join(lines) + '\neval "$__sk_x"\n}'
    if "\n" in command:
        command = "{\n" + command + "\n}"
    return f"{START_FUNCTION}; {command}"


def _exit_status(status: str, signal: str, pid: str = "") -> int | None:
    """ssh's exit status as a shell reports it: the code, or 128 + the signal that killed it.

    tmux 3.3 sometimes marks a pane dead (its pty closed) without reaping the process; the
    zombie's /proc stat still holds the wait status then.
    """
    if status.isdigit():
        return int(status)
    if signal.isdigit():
        return 128 + int(signal)
    if pid.isdigit():
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields and fields[0] == "Z" and len(fields) >= 50 and fields[49].isdigit():
            wait = int(fields[49])
            return 128 + (wait & 0x7F) if wait & 0x7F else (wait >> 8) & 0xFF
    return None


def _load_argv(raw: str) -> list[str]:
    try:
        value = json.loads(raw) if raw else []
    except json.JSONDecodeError:
        return []
    return [str(x) for x in value] if isinstance(value, list) else []


def _first_page(lines: list[str]) -> tuple[list[str], int | None, str | None]:
    """Bound the first reply: keep head and tail, say what was cut and how to page."""
    total_chars = sum(len(x) + 1 for x in lines)
    if total_chars <= FIRST_REPLY_CHARS:
        return lines, None, None
    head: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > FIRST_REPLY_CHARS // 2:
            break
        head.append(line[: FIRST_REPLY_CHARS // 2])
        used += len(line) + 1
    tail: list[str] = []
    used = 0
    for line in reversed(lines[len(head) :]):
        if used + len(line) + 1 > FIRST_REPLY_CHARS // 2:
            break
        tail.append(line)
        used += len(line) + 1
    tail.reverse()
    cut_from = len(head)
    cut_to = len(lines) - len(tail)
    note = (
        f"[... {cut_to - cut_from} lines cut (lines {cut_from}..{cut_to - 1} of {len(lines)}); "
        f"page with get_command(offset={cut_from}) ...]"
    )
    return [*head, note, *tail], cut_from, note


def _login_hint(q: Question) -> str:
    if q.kind == "host_key":
        return (
            "ssh does not know this host key: check the fingerprint, then accept with "
            'send_keys(["yes", "Enter"]) (or set StrictHostKeyChecking accept-new in ssh_options), '
            "or close_session."
        )
    return 'Login asks for input: answer with send_keys([..., "Enter"]), or configure it in config.yml.'
