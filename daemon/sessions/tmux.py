"""Talking to our private tmux server without blocking the event loop.

Two ways in: `run()` spawns one `tmux` process (for set-up work and anything that needs stdin,
like `load-buffer -`), and `ControlClient` keeps one `tmux -C` client whose stdin takes commands,
so the hot path (typing a command) spawns nothing. Every failure becomes a `TmuxError`; a command
tmux refused (a gone pane, a bad option) is its subclass `TmuxCommandFailed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from sshkeep.common import systemd
from sshkeep.common.errors import TmuxCommandFailed, TmuxError
from sshkeep.common.tmux import HOLD_HOOK, TMUX_CONF
from sshkeep.common.tmux import quote as quote  # re-exported: the engine quotes words with it

log = structlog.get_logger(__name__)

CONTROL_SESSION = "_sshkeep_ctl"
SERVER_START_TIMEOUT = 15.0
LINE_LIMIT = 16 * 1024 * 1024  # a longer output line ends the client (as the stream limit did)


# What tmux's parser skips when it looks for `;`: escapes and quoted strings (an unclosed one runs to
# the end of the line; in double quotes a backslash escapes).
_QUOTED = re.compile(r"""\\[\s\S]?|'[^']*'?|"(?:[^"\\]|\\[\s\S]?)*"?""")


def count_commands(line: str) -> int:
    """How many commands tmux parses from one line: 1 + each `;` outside quotes and escapes.

    A control client gets one `%begin`/`%end` block per command of a line (`a ; b` gives two),
    and one `%error` block ends the line (a parse error, or a command that failed: tmux skips the
    rest), so replies can only be matched to lines by counting.
    """
    body = line.rstrip().rstrip(";")
    if ";" not in body:
        return 1
    # The quoted parts and escapes taken out (by the regex engine, with no Python per token), every
    # `;` left separates two commands: none of them can start a quote or an escape.
    return 1 + _QUOTED.sub("", body).count(";")


@dataclass
class _Pending:
    """One command line sent to the control client, waiting for its `left` reply blocks."""

    future: asyncio.Future[list[str]]
    left: int
    body: list[str] = field(default_factory=list)


class Tmux:
    """One private tmux server, addressed by `-L name` or `-S path`."""

    def __init__(self, server_args: Sequence[str], conf_path: Path) -> None:
        self.server_args = list(server_args)
        self.conf_path = conf_path
        self._control: ControlClient | None = None
        self._control_lock = asyncio.Lock()
        # Names of environment variables secrets refer to: never handed to tmux (so to no pane).
        self.hidden_env: Callable[[], Iterable[str]] = lambda: ()

    def env(self) -> dict[str, str]:
        """Environment for a tmux process: ours, minus $TMUX and every variable a secret uses."""
        drop = {"TMUX", *self.hidden_env()}
        # A daemon started from inside tmux must still talk to its own server: no $TMUX.
        return {k: v for k, v in os.environ.items() if k not in drop}

    def argv(self, *args: str) -> list[str]:
        return ["tmux", *self.server_args, "-f", str(self.conf_path), *args]

    def write_conf(self) -> None:
        self.conf_path.parent.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(TMUX_CONF)

    async def run(
        self, *args: str, stdin: bytes | None = None, timeout: float = 10.0, check: bool = True
    ) -> str:
        """Run one tmux command in its own process; return stdout."""
        env = self.env()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(*args),
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except FileNotFoundError as exc:
            raise TmuxError("tmux is not installed (no `tmux` on PATH)", hint="Install tmux.") from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise TmuxError(f"tmux {args[0]} did not answer within {timeout:g}s") from exc
        if check and proc.returncode != 0:
            raise TmuxCommandFailed(f"tmux {args[0]} failed: {err.decode(errors='replace').strip()}")
        return out.decode(errors="replace")

    async def server_running(self) -> bool:
        try:
            await self.run("list-sessions", "-F", "#{session_name}", timeout=5)
        except TmuxError:
            return False
        return True

    async def ensure_server(self) -> None:
        """Start the server (with a hidden control session) if it is not running.

        Under systemd the server must not be forked into the daemon's cgroup: stopping or
        restarting the daemon's unit would kill it and every session. So it is started by
        `sshkeep-tmux.service` when that unit is installed for this server, else in a transient
        scope of its own (`systemd-run --scope`).
        """
        running = await self.server_running()
        if running:
            out = await self.run("list-sessions", "-F", "#{session_name}")
            if CONTROL_SESSION in out.split("\n"):
                # A server started by an older config: persons' clients attach read-only all the same.
                await self.run("set-hook", "-g", "client-attached", HOLD_HOOK, check=False)
                return
        self.write_conf()
        size = ("-x", "80", "-y", "24")
        new_control = ("new-session", "-d", "-s", CONTROL_SESSION, *size, "tail -f /dev/null")
        placement = None if running else await systemd.tmux_placement(self.server_args)
        if placement == "unit":
            await self._start_unit()
        elif placement is not None:
            description = f"sshkeep tmux server ({' '.join(self.server_args)})"
            argv = systemd.scope_argv(placement, description, self.argv(*new_control))
            code, _, err = await systemd.run(argv, timeout=30, base_env=self.env())
            if code == 0:
                log.info("tmux_started", placement=placement)
                return
            # No scope (e.g. no delegation): a forked server still works, it just dies with us.
            log.warning("tmux_scope_failed", placement=placement, error=err.strip())
        await self.run(*new_control)

    async def _start_unit(self) -> None:
        """Start `sshkeep-tmux.service` and wait until its server answers."""
        unit = systemd.TMUX_UNIT
        code, _, err = await systemd.systemctl("start", unit, timeout=60)
        if code != 0:
            raise TmuxError(
                f"`systemctl --user start {unit}` failed: {err.strip() or f'exit status {code}'}",
                hint=f"See `systemctl --user status {unit}` and `journalctl --user -u {unit}`.",
            )
        # Type=exec: the start job ends when tmux is exec'd, a moment before it listens. Never
        # run a tmux client before it answers: the client would fork a server into our cgroup.
        deadline = asyncio.get_running_loop().time() + SERVER_START_TIMEOUT
        while not await self.server_running():
            if asyncio.get_running_loop().time() > deadline:
                raise TmuxError(
                    f"{unit} started but its tmux server did not answer within {SERVER_START_TIMEOUT:g}s",
                    hint=f"See `systemctl --user status {unit}` and `journalctl --user -u {unit}`.",
                )
            await asyncio.sleep(0.05)
        log.info("tmux_started", placement="unit", unit=unit)

    async def control(self) -> ControlClient:
        """The shared control-mode client, (re)started on demand."""
        client = self._control
        if client is not None and client.alive:
            return client  # the usual case: no lock to take
        async with self._control_lock:
            if self._control is None or not self._control.alive:
                await self.ensure_server()
                client = ControlClient(self.argv("-C", "attach-session", "-t", CONTROL_SESSION), self.env())
                await client.start()
                self._control = client
            return self._control

    async def command(
        self, line: str, timeout: float = 10.0, sent: Callable[[], Awaitable[None]] | None = None
    ) -> list[str]:
        """Run one tmux command line through the control client; fall back to a process. `sent`,
        if given, is awaited once the line is on its way to tmux, before its reply."""
        wrote = False
        hook: Callable[[], Awaitable[None]] | None = None
        if sent is not None:
            after = sent

            async def written() -> None:
                nonlocal wrote
                wrote = True
                await after()

            hook = written  # a line without `sent` waits for nothing between its write and reply
        try:
            client = await self.control()
            return await client.command(line, timeout, hook)
        except TmuxCommandFailed:
            raise
        except TmuxError as exc:
            if wrote:
                raise  # the line went to tmux already: running it again could type keys twice
            log.warning("tmux_control_fallback", error=exc.message)
            out = await self.run("source-file", "-", stdin=(line + "\n").encode(), timeout=timeout)
            if sent is not None:
                await sent()
            return out.splitlines()

    async def close(self) -> None:
        if self._control is not None:
            await self._control.close()
            self._control = None

    async def kill_server(self) -> None:
        await self.close()
        with contextlib.suppress(TmuxError):
            await self.run("kill-server", check=False)


class _ControlProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """The control client's pipes: stdin as a stream (its writes wait while tmux is slow to read),
    stdout straight to the client's line parser (no stream buffer, no reader task)."""

    def __init__(
        self, on_data: Callable[[bytes], None], on_end: Callable[[], None], loop: asyncio.AbstractEventLoop
    ) -> None:
        super().__init__(limit=LINE_LIMIT, loop=loop)
        self._on_data = on_data
        self._on_end = on_end

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd == 1 and isinstance(data, bytes):
            self._on_data(data)
        else:
            super().pipe_data_received(fd, data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self._on_end()
        super().pipe_connection_lost(fd, exc)


class ControlClient:
    """One `tmux -C` client: commands in on stdin, `%begin/%end/%error` replies out, in order."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self._argv = argv
        self._env = env
        self._proc: asyncio.subprocess.Process | None = None
        self._pending: deque[_Pending] = deque()
        self._write_lock = asyncio.Lock()
        self.alive = False
        # The reply block being read: its body lines (None between blocks), and whether it
        # answers one of our commands (flags 1) rather than the attach.
        self._body: list[str] | None = None
        self._ours = False
        self._tail: list[bytes] = []  # the pieces of an output line not ended yet
        self._tail_size = 0
        self._broken = False  # the output ended, or a line was over LINE_LIMIT: no more is read

    async def start(self) -> None:
        env = dict(self._env) if self._env is not None else dict(os.environ)
        env.pop("TMUX", None)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.subprocess_exec(
            lambda: _ControlProtocol(self._feed, self._ended, loop),
            *self._argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )
        self._proc = asyncio.subprocess.Process(transport, protocol, loop)
        # The attach itself produces one %begin/%end pair with flags 0 before our commands.
        self.alive = not self._broken  # (its output may have ended already)

    def _feed(self, data: bytes) -> None:
        """Output of the client, as it arrives (in the event loop's read callback itself: the
        reply wakes its caller without a reader task in between)."""
        if self._broken:
            return
        if b"\n" not in data:  # a long line in pieces: joined once it ends
            self._tail.append(data)
            self._tail_size += len(data)
            if self._tail_size > LINE_LIMIT:
                log.warning("tmux_control_read_error", error=f"a tmux control line over {LINE_LIMIT} bytes")
                self._broken = True
                self._ended()
            return
        if self._tail:
            data = b"".join([*self._tail, data])
            self._tail.clear()
        lines = data.split(b"\n")
        last = lines.pop()
        if last:
            self._tail.append(last)
        self._tail_size = len(last)
        for raw in lines:
            self._on_line(raw.decode(errors="replace"))

    def _ended(self) -> None:
        """The client's output ended (it exited) or cannot be read on: fail what waits."""
        if self._tail and not self._broken:
            self._on_line(b"".join(self._tail).decode(errors="replace"))
        self._tail.clear()
        self._broken = True
        self.alive = False
        while self._pending:
            fut = self._pending.popleft().future
            if not fut.done():
                fut.set_exception(TmuxError("tmux control client exited"))

    def _on_line(self, line: str) -> None:
        """One line of the client's output: a reply block's begin, a line of its body, or its end."""
        body = self._body
        if body is None:
            if line.startswith("%begin "):
                parts = line.split()
                self._ours = len(parts) >= 4 and parts[3] == "1"
                self._body = []
            # everything else outside a block is a notification we do not need
            return
        if line.startswith(("%end ", "%error ")):
            if self._ours and self._pending:
                pending = self._pending[0]
                if line.startswith("%error "):
                    self._pending.popleft()
                    if not pending.future.done():
                        failed = TmuxCommandFailed("tmux command failed: " + " ".join(body))
                        pending.future.set_exception(failed)
                else:
                    pending.body.extend(body)
                    pending.left -= 1
                    if pending.left <= 0:
                        self._pending.popleft()
                        if not pending.future.done():
                            pending.future.set_result(pending.body)
            self._body = None
            return
        body.append(line)

    async def command(
        self, line: str, timeout: float = 10.0, sent: Callable[[], Awaitable[None]] | None = None
    ) -> list[str]:
        if "\n" in line:
            raise TmuxError("a tmux control command cannot contain a newline")
        if not self.alive or self._proc is None or self._proc.stdin is None:
            raise TmuxError("tmux control client is not running")
        fut: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
        async with self._write_lock:
            self._pending.append(_Pending(fut, count_commands(line)))
            try:
                self._proc.stdin.write(line.encode() + b"\n")
                await self._proc.stdin.drain()
            except (OSError, RuntimeError) as exc:
                self.alive = False
                raise TmuxError(f"tmux control client is gone: {exc}") from exc
        if sent is not None:
            await sent()
        try:
            async with asyncio.timeout(timeout):
                # Not shielded: a cancelled wait cancels `fut`, which the reader then skips.
                return await fut
        except TimeoutError as exc:
            raise TmuxError(f"tmux did not answer `{line.split(' ', 1)[0]}` within {timeout:g}s") from exc

    async def close(self) -> None:
        self.alive = False
        if self._proc is not None:
            if self._proc.stdin is not None:
                with contextlib.suppress(OSError, RuntimeError):
                    self._proc.stdin.close()
            try:
                await asyncio.wait_for(self._proc.wait(), 2)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self._proc.kill()
                await self._proc.wait()


def pane_exit_status(status: str, signal: str, pid: str = "") -> int | None:
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
