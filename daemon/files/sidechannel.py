"""The per-session side channel: SFTP over the session's authenticated ssh ControlMaster socket.

Why SFTP and not a framed side shell: the SFTP subsystem moves exact bytes with no encoding step,
reports errors as status codes (no such file, permission denied) instead of text to parse, renames
atomically (`posix-rename@openssh.com`), and needs nothing on the remote host beyond the subsystem
OpenSSH enables by default (`internal-sftp` does not even start a login shell). A side shell would
depend on the remote shell's quoting rules and tools (base64, head -c, mv) and on a quiet ~/.bashrc.

One SFTP channel per session is opened lazily and kept for reuse: the sftp subsystem on a channel
the daemon opens on the pane's ssh master itself, speaking the master's own protocol over its
socket (daemon/files/muxclient.py), as `ssh -S <ControlPath> -s <dest> sftp` would but without a
process, so password and 2FA sessions need no new login. Opening a channel costs a round trip
plus, for an external sftp-server, a login shell start; once open, a request costs a fraction of
a millisecond. It is reopened if it dies (e.g. after a reconnect) and closed when the session
closes, dies or stays idle. Side commands (`exec_command`) get an exec channel the same way, one
per call. The SFTP client itself (packets, attributes, pipelined reads and writes) is
daemon/files/sftp.py.

One trap shapes the design: an ssh master does not exit while any multiplexed channel is open, so
a side channel held open would keep the pane's ssh alive after the remote shell exits (`exit`
typed in the pane would leave a hung pane). When the master's own session ends, ssh leaves raw
mode on its terminal; a watcher polls the pane's tty (one tcgetattr per second while a channel is
open) and closes the side channel at once when it sees that, so the pane dies as it should.

What such a channel carries besides its command (SendEnv, SetEnv, agent and X11 forwarding) is
what an `ssh -S` client would send: `ssh -G` prints it, once per channel, for the argv of a side
client, which is the session's own argv minus what only the master may do (ControlMaster=yes,
LocalCommand, forwardings, -J), plus `-o ControlMaster=no -S <path>` and `ProxyCommand=false`
(that argv, run, could never open a fresh connection: a new login, impossible for password hosts).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import structlog

from sshkeep.common.errors import (
    RemoteError,
    SessionDisconnected,
    SessionNotFound,
    SessionNotReady,
    TmuxError,
)
from sshkeep.daemon.files import muxclient
from sshkeep.daemon.files.errors import exec_error, lost_error, open_error, spawn_error
from sshkeep.daemon.files.sftp import ChannelLost, SftpClient
from sshkeep.daemon.sessions.session import Session
from sshkeep.daemon.sessions.tmux import Tmux

log = structlog.get_logger(__name__)

T = TypeVar("T")

IDLE_CLOSE = 120.0  # seconds an unused channel stays open
IDLE_CLOSE_BLIND = 5.0  # ... when the pane's tty cannot be watched
WATCH_INTERVAL = 1.0
OUTPUT_READ_LIMIT = 1 << 20  # a side command's streams are read in chunks, capped by _Capture
FLAGS_TIMEOUT = 10.0  # seconds `ssh -G` may take to print a side client's configuration


# --- ssh argv -------------------------------------------------------------------------------------

# ssh options that take an argument (from ssh(1)'s getopt string).
_WITH_ARG = set("BbcDEeFIiJLlmOopQRSWw")
# Flags a side client must not inherit: master-only, forwarding, mode and verbosity flags.
_DROP_WITH_ARG = set("DEJLOQRSWw")
_DROP_NO_ARG = set("fGMNnsTtVv")
# -o keys (lowercase) that belong to the master or would change what a side client does.
_DROP_OPTIONS = frozenset(
    {
        "controlmaster",
        "controlpath",
        "controlpersist",
        "permitlocalcommand",
        "localcommand",
        "proxyjump",
        "proxycommand",
        "localforward",
        "remoteforward",
        "dynamicforward",
        "requesttty",
        "remotecommand",
        "sessiontype",
        "stdinnull",
        "forkafterauthentication",
        "loglevel",
        "batchmode",
        "clearallforwardings",
        "exitonforwardfailure",
    }
)


def _option_key(value: str) -> str:
    return value.replace("=", " ", 1).split(" ", 1)[0].strip().lower()


def split_ssh_argv(argv: Sequence[str]) -> tuple[list[str], str | None, str | None]:
    """(options kept for a side client, destination, ControlPath) from a session's ssh argv."""
    args = list(argv[1:]) if argv and not argv[0].startswith("-") else list(argv)
    kept: list[str] = []
    control_path: str | None = None
    dest: str | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            dest = args[i + 1] if i + 1 < len(args) else None
            break
        if not a.startswith("-") or a == "-":
            dest = a  # ssh stops at the destination; the rest would be a command
            break
        j = 1
        while j < len(a):
            flag = a[j]
            if flag in _WITH_ARG:
                if j + 1 < len(a):
                    value = a[j + 1 :]
                else:
                    i += 1
                    value = args[i] if i < len(args) else ""
                if flag == "o":
                    key = _option_key(value)
                    if key == "controlpath" and control_path is None:
                        control_path = value.replace("=", " ", 1).split(" ", 1)[1].strip()
                    if key not in _DROP_OPTIONS:
                        kept += ["-o", value]
                elif flag == "S":
                    control_path = control_path or value
                elif flag not in _DROP_WITH_ARG:
                    kept += [f"-{flag}", value]
                break
            if flag not in _DROP_NO_ARG:
                kept.append(f"-{flag}")
            j += 1
        i += 1
    return kept, dest, control_path


def side_argv(control_path: str, options: Sequence[str], dest: str, *, subsystem: str | None = None,
              command: str | None = None) -> list[str]:  # fmt: skip
    """argv of a multiplexing client of the master at `control_path` that cannot log in itself."""
    argv = [
        "ssh",
        "-S", control_path,
        "-o", "ControlMaster=no",
        # If the master is gone ssh falls back to connecting itself: make that fail at once.
        "-o", "ProxyCommand=false",
        "-o", "BatchMode=yes",
        "-o", "ClearAllForwardings=yes",
        "-o", "PermitLocalCommand=no",
        "-o", "RemoteCommand=none",
        "-o", "RequestTTY=no",
        "-o", "LogLevel=ERROR",
        *options,
    ]  # fmt: skip
    if subsystem is not None:
        return [*argv, "-s", "--", dest, subsystem]
    return [*argv, "--", dest, command or ""]


def tty_is_raw(path: str) -> bool | None:
    """Whether the tty at `path` is in raw mode (ICANON off); None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        lflag = termios.tcgetattr(fd)[3]
    except termios.error:
        return None
    finally:
        os.close(fd)
    return not (int(lflag) & termios.ICANON)


# --- channels per session -----------------------------------------------------------------------------


@dataclass
class SideChannel:
    """The SFTP channel of one session (opened lazily, reopened when dead)."""

    session: Session
    control_path: Path
    options: list[str]
    dest: str
    client: SftpClient | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0
    tty: str | None = None
    tty_was_raw: bool | None = None
    opened: int = 0
    # The session nonce when the remote shell was seen exiting (a reconnect changes the nonce).
    released_nonce: str | None = None
    # What a new channel carries besides its command (from `ssh -G`, once).
    flags: muxclient.SessionFlags | None = None

    def argv(self, command: str) -> list[str]:
        """The argv of an `ssh -S` client running `command` (for `ssh -G` to read its settings)."""
        return side_argv(str(self.control_path), self.options, self.dest, command=command)

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()
            log.info("side_channel_closed", session=self.session.id)


class SideChannels:
    """Every session's side channel in one daemon, and the watcher that closes them in time.

    One per daemon, built and closed by the composition root (daemon/server.py). `current` maps a
    session id to the live session (None once closed); `control_dir` holds the masters' sockets."""

    def __init__(self, current: Callable[[str], Session | None], control_dir: Path, tmux: Tmux) -> None:
        self.current = current
        self.control_dir = control_dir
        self.tmux = tmux
        self.channels: dict[str, SideChannel] = {}
        self._watch: asyncio.Task[None] | None = None

    # --- master ------------------------------------------------------------------------------------

    def require_master(self, s: Session) -> SideChannel:
        """The session's channel record, after checking that its ssh master can be used."""
        if s.closed or self.current(s.id) is not s:
            raise SessionNotFound(f"session {s.id} is closed")
        if s.dead:
            raise SessionDisconnected(
                f"session {s.id} is disconnected, so there is no ssh connection to reuse for files "
                "or side commands",
                hint="Call reconnect_session to start a fresh ssh in this session, or close_session.",
            )
        kept, dest, cpath = split_ssh_argv(s.ssh_argv)
        control = Path(cpath) if cpath else self.control_dir / s.id
        ch = self.channels.get(s.id)
        if ch is None or ch.session is not s or ch.control_path != control:
            ch = SideChannel(session=s, control_path=control, options=kept, dest=dest or s.target)
            old = self.channels.get(s.id)
            if old is not None and old.client is not None:
                asyncio.get_running_loop().create_task(old.close())
            self.channels[s.id] = ch
        if ch.released_nonce is not None and ch.released_nonce == s.nonce:
            raise SessionDisconnected(
                f"the remote shell of session {s.id} has exited and its ssh connection is closing",
                hint="Call reconnect_session to start a fresh ssh in this session, or close_session.",
            )
        if not control.exists():
            if not s.authenticated:
                raise SessionNotReady(
                    f"session {s.id} is not logged in yet, so it has no ssh master connection for "
                    "files or side commands",
                    hint="Answer the login prompt with send_keys (get_snapshot shows it), then retry.",
                )
            raise SessionNotReady(
                f"session {s.id} has no ssh master connection (no control socket at {control}); "
                "files and side commands need one",
                hint="reconnect_session (after ssh exits) starts one; meanwhile send_command works in "
                "the terminal.",
            )
        return ch

    # --- what a new channel carries --------------------------------------------------------------

    async def session_flags(self, ch: SideChannel) -> muxclient.SessionFlags:
        """What an `ssh -S` client would send with a new channel (SendEnv, SetEnv, forwarding),
        read once per channel record from `ssh -G` with the side client's options."""
        if ch.flags is not None:
            return ch.flags
        argv = ch.argv("true")
        argv.insert(1, "-G")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise spawn_error("a side channel", exc) from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), FLAGS_TIMEOUT)
        except TimeoutError as exc:  # a `Match exec` of the user's ssh_config that never ends
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise RemoteError(
                f"ssh -G did not print the side client's configuration within {FLAGS_TIMEOUT:g}s"
            ) from exc
        if proc.returncode != 0:
            why = err.decode("utf-8", errors="replace").strip()[-300:]
            raise RemoteError(f"ssh -G could not read the side client's configuration: {why}")
        ch.flags = muxclient.session_flags(out.decode("utf-8", errors="replace"), dict(os.environ))
        return ch.flags

    # --- the SFTP channel ------------------------------------------------------------------------

    async def sftp(self, ch: SideChannel) -> SftpClient:
        """The channel's live SFTP client, opened (or reopened) on demand."""
        async with ch.lock:
            if ch.client is not None and ch.client.alive:
                return ch.client
            if ch.client is not None:
                await ch.close()
            started = time.monotonic()
            flags = await self.session_flags(ch)
            try:
                client = await SftpClient.on_master(ch.control_path, flags, ch.session.id)
            except ChannelLost as exc:
                gone = not ch.control_path.exists() or ch.session.dead
                raise open_error(ch.session.id, exc, gone) from exc
            except OSError as exc:
                raise spawn_error("the side channel", exc) from exc
            ch.client = client
            ch.opened += 1
            # Asked at every open: a respawned pane (reconnect) gets a new tty.
            ch.tty = None
            with contextlib.suppress(TmuxError):
                out = await self.tmux.command(f"display-message -p -t {ch.session.pane_id} '#{{pane_tty}}'")
                ch.tty = out[0].strip() if out and out[0].strip() else None
            ch.tty_was_raw = tty_is_raw(ch.tty) if ch.tty else None
            log.info(
                "side_channel_opened",
                session=ch.session.id,
                ms=round((time.monotonic() - started) * 1000, 1),
                extensions=sorted(client.extensions),
            )
            self._ensure_watch()
            return client

    async def run(self, s: Session, fn: Callable[[SftpClient], Awaitable[T]], *, retry: bool = True) -> T:
        """Run `fn` on the session's SFTP channel; if the channel dies under it, reopen once and
        run it again (only when `retry`: a write is not repeated blindly)."""
        for attempt in (1, 2):
            ch = self.require_master(s)
            ch.busy += 1
            try:
                client = await self.sftp(ch)
                ch.last_used = time.monotonic()
                return await fn(client)
            except ChannelLost as exc:
                await ch.close()
                if attempt == 2 or not retry:
                    raise lost_error(s.id, exc) from exc
            finally:
                ch.busy -= 1
                ch.last_used = time.monotonic()
        raise AssertionError("unreachable")

    # --- watcher ----------------------------------------------------------------------------------

    def _ensure_watch(self) -> None:
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watch_loop(), name="side-channels")

    async def _watch_loop(self) -> None:
        while any(ch.client is not None for ch in self.channels.values()):
            await asyncio.sleep(WATCH_INTERVAL)
            for sid, ch in list(self.channels.items()):
                try:
                    await self._check(sid, ch)
                except Exception:
                    log.exception("side_channel_watch_failed", session=sid)

    async def _check(self, sid: str, ch: SideChannel) -> None:
        s = ch.session
        gone = s.closed or s.dead or self.current(sid) is not s
        if gone:
            await ch.close()
            if self.channels.get(sid) is ch:
                del self.channels[sid]
            return
        if ch.client is None:
            return
        if not ch.client.alive:
            await ch.close()
            return
        if ch.busy:
            return
        raw = tty_is_raw(ch.tty) if ch.tty else None
        if raw is False and ch.tty_was_raw:
            # The master left raw mode: its own session ended. Let it exit (see module doc).
            log.info("side_channel_released", session=sid, reason="remote shell exited")
            ch.released_nonce = s.nonce
            await ch.close()
            return
        idle = IDLE_CLOSE if ch.tty_was_raw else IDLE_CLOSE_BLIND
        if time.monotonic() - ch.last_used > idle:
            await ch.close()

    async def close_all(self) -> None:
        for ch in list(self.channels.values()):
            await ch.close()
        self.channels.clear()
        if self._watch is not None:
            self._watch.cancel()


# --- side commands ------------------------------------------------------------------------------------


@dataclass
class ExecOutcome:
    """What a side command did: exit status and its two streams (each capped)."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    seconds: float


@dataclass
class _Capture:
    cap: int
    buf: bytearray = field(default_factory=bytearray)
    dropped: bool = False

    async def pump(self, stream: asyncio.StreamReader | None) -> None:
        """Read `stream` to its end, keeping at most `cap` bytes."""
        if stream is None:
            return
        while chunk := await stream.read(65536):
            room = self.cap - len(self.buf)
            if room > 0:
                self.buf += chunk[:room]
            if len(chunk) > room:
                self.dropped = True  # keep reading: a full pipe would stall the remote command


async def run_side_command(
    reg: SideChannels, s: Session, command: str, timeout: float, cap: int
) -> ExecOutcome:
    """Run `command` on an exec channel of the session's master: stdin empty, no tty, no pane.

    The daemon opens the channel itself, speaking the master's protocol (daemon/files/muxclient.py)
    with what an `ssh -S` client of the same options would send."""
    ch = reg.require_master(s)
    flags = await reg.session_flags(ch)
    try:
        return await _run_on_master(ch, command, timeout, cap, flags)
    except muxclient.MuxError as exc:
        if exc.started:  # the request went out: the command may be running, so never "did not run"
            raise exec_error(s.id, f"{exc}; the command may have started", False) from exc
        raise exec_error(s.id, str(exc), s.dead or not ch.control_path.exists()) from exc


async def _run_on_master(
    ch: SideChannel, command: str, timeout: float, cap: int, flags: muxclient.SessionFlags
) -> ExecOutcome:
    """The command on a channel the daemon opens on the master itself, its output in two pipes."""
    started = time.monotonic()
    piped = await muxclient.open_piped(ch.control_path, command, flags)
    mux = piped.mux
    out_stream, out_t = await muxclient.pipe_reader(piped.stdout, OUTPUT_READ_LIMIT)
    err_stream, err_t = await muxclient.pipe_reader(piped.stderr, OUTPUT_READ_LIMIT)
    out, err = _Capture(cap), _Capture(cap)
    tasks = [
        asyncio.create_task(out.pump(out_stream)),
        asyncio.create_task(err.pump(err_stream)),
        asyncio.create_task(mux.wait()),
    ]
    try:
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        # Output still open after the channel closed (a remote background job holding it) is not
        # a timeout.
        timed_out = tasks[2] in pending
    finally:
        mux.close()  # a channel still open is closed by the master, and with it the pipes
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 3.0)
        for t in tasks:
            if not t.done():
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        out_t.close()
        err_t.close()
    return ExecOutcome(
        exit_code=None if timed_out else tasks[2].result(),
        stdout=bytes(out.buf),
        stderr=bytes(err.buf),
        stdout_truncated=out.dropped,
        stderr_truncated=err.dropped,
        timed_out=timed_out,
        seconds=time.monotonic() - started,
    )
