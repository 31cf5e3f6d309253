"""Starting the daemon at the shim's first instant, before the shim imports the MCP SDK.

The SDK's import takes longer than the daemon's start-up, so a daemon spawned while it loads is
usually answering by the time the MCP host's first tool call arrives. `EarlyStart.begin` does it
in a background thread, with the standard library only: one health request; when nothing
answers and no systemd user manager does either (which would start the daemon as a unit, see
`autostart`), it spawns `sshkeep daemon` detached, as `autostart` would. `ensure_daemon` then
waits for that daemon instead of spawning another.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

from sshkeep.common.paths import Paths, ensure_private_dir
from sshkeep.common.rundir import peer_problem, socket_problem
from sshkeep.common.unixhttp import HttpUnavailable, call


class _NotOurs(Exception):
    pass


def _ours(sock: socket.socket, paths: Paths) -> None:
    if peer_problem(sock, paths.socket) is not None:
        raise _NotOurs


def nothing_answers(paths: Paths, timeout: float = 2.0) -> bool:
    """Whether no daemon answers on our socket, asked as the API client would (a socket that is
    not safely ours is left to `autostart`, which moves elsewhere)."""
    if socket_problem(paths.socket) is not None:
        return False
    try:
        call(str(paths.socket), "GET", "/v1/health", timeout=timeout, check=lambda sock: _ours(sock, paths))
    except HttpUnavailable:
        return True
    except _NotOurs:
        return False
    return False


def user_manager_answers() -> bool:
    """Whether a systemd user manager answers (as `systemd.user_manager_environment` asks)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        done = subprocess.run(
            ["systemctl", "--user", "show-environment"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def spawn_daemon(
    paths: Paths, argv_prefix: list[str] | None = None, rotate: bool = True
) -> subprocess.Popen[bytes]:
    """Start `sshkeep daemon` detached from our session, logging to the state dir.

    `argv_prefix` wraps it (e.g. in `systemd-run --scope`). With `rotate`, the daemon log is
    rotated by config.yml's settings first; without, the daemon caps it itself as it starts."""
    argv = [*(argv_prefix or []), sys.executable, "-m", "sshkeep", "daemon"]
    ensure_private_dir(paths.state_dir)
    if rotate:
        from sshkeep.common.logs import rotate_daemon_log  # parses config.yml

        rotate_daemon_log(paths)
    fd = os.open(paths.daemon_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    finally:
        os.close(fd)


class EarlyStart:
    """The early check (and spawn) of one shim, running in a thread of its own."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="sshkeep-early-start", daemon=True)

    @classmethod
    def begin(cls, paths: Paths) -> EarlyStart:
        early = cls(paths)
        early._thread.start()
        return early

    def _run(self) -> None:
        try:
            if not nothing_answers(self.paths) or user_manager_answers():
                return
            # The daemon caps its own log as it starts: no config.yml parsing on this path.
            self.proc = spawn_daemon(self.paths, rotate=False)
        except Exception as exc:  # autostart tries again, and reports what fails
            self.error = f"{type(exc).__name__}: {exc}"

    def join(self, timeout: float = 15.0) -> subprocess.Popen[bytes] | None:
        """Wait for the check; the daemon it spawned, if it did."""
        self._thread.join(timeout)
        return self.proc
