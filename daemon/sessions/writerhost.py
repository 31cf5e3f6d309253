"""The log writers' host: one process living in the tmux server that forks every pane's log
writer, so that a pane's writer costs ~1 MB of memory of its own instead of a whole interpreter's
~4 MB (the protocol is in logwriter.py). Started through tmux (`run-shell -b`: a child of the tmux
server, in its cgroup, outliving the daemon) whenever a pane is about to be piped and none answers.
Without one a pane's writer simply writes by itself, as it always could."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import structlog

from sshkeep.common.errors import TmuxError
from sshkeep.daemon.sessions.loggaps import host_command
from sshkeep.daemon.sessions.tmux import Tmux, quote

log = structlog.get_logger(__name__)

START_WAIT = 1.0  # seconds to wait for a host just started to listen
RETRY_AFTER = 10.0  # seconds between two attempts to start one that did not come up


class WriterHost:
    """Checks for (and starts) the host listening on `path` for this tmux server. Linux only (the
    host checks its peers with SO_PEERCRED): elsewhere `path` is None and every writer writes by
    itself."""

    def __init__(self, tmux: Tmux, path: Path) -> None:
        self.tmux = tmux
        self.path: Path | None = path if sys.platform.startswith("linux") else None
        self._tried = float("-inf")
        self._starting: asyncio.Future[None] | None = None

    def answers(self) -> bool:
        """Whether a host accepts connections on the socket now (a local connect: no waiting)."""
        if self.path is None:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            sock.connect(str(self.path))
        except OSError:
            return False
        finally:
            sock.close()
        return True

    async def ensure(self) -> None:
        """Start a host unless one answers (at most once per RETRY_AFTER while none comes up);
        panes opened meanwhile wait for the one being started."""
        if self.path is None or self.answers():
            return
        if self._starting is None or self._starting.done():
            if time.monotonic() - self._tried < RETRY_AFTER:
                return
            self._tried = time.monotonic()
            self._starting = asyncio.ensure_future(self._start())
        await asyncio.shield(self._starting)

    async def _start(self) -> None:
        assert self.path is not None
        try:
            await self.tmux.command(f"run-shell -b {quote(host_command(self.path))}")
        except TmuxError as exc:
            log.warning("log_writer_host_not_started", error=exc.message)
            return
        deadline = time.monotonic() + START_WAIT
        while not self.answers():
            if time.monotonic() > deadline:
                log.warning("log_writer_host_silent", socket=str(self.path))
                return
            await asyncio.sleep(0.01)
