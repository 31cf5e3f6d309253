"""Running the daemon: one per socket (flock first), a private socket, clean shutdown.

Shutting the daemon down never touches the tmux server: sessions keep running and the next
daemon adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
from pathlib import Path
from typing import IO

import structlog
from aiohttp import web

from common.config import ConfigSource
from common.errors import DaemonAlreadyRunning
from common.paths import Paths, ensure_private_dir
from daemon.app import build_app
from daemon.manager import SessionManager

log = structlog.get_logger(__name__)


def take_lock(lock_path: Path, socket_path: Path) -> IO[str]:
    """Hold an exclusive flock for this socket, or explain who holds it."""
    f = open(lock_path, "a+")  # noqa: SIM115 - held for the daemon's lifetime
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise DaemonAlreadyRunning(
            f"another sshkeep daemon (pid {holder}) already serves {socket_path}"
        ) from exc
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


async def serve(paths: Paths, ready: asyncio.Event | None = None) -> None:
    ensure_private_dir(paths.runtime_dir)
    ensure_private_dir(paths.socket.parent)
    lock = take_lock(paths.socket.parent / (paths.socket.name + ".lock"), paths.socket)
    m = SessionManager(paths, ConfigSource(paths.config_file))
    runner: web.AppRunner | None = None
    try:
        await m.start()
        runner = web.AppRunner(build_app(m), access_log=None, handle_signals=False)
        await runner.setup()
        with contextlib.suppress(FileNotFoundError):
            paths.socket.unlink()  # stale: we hold the lock, so no daemon serves it
        old_umask = os.umask(0o177)
        try:
            site = web.UnixSite(runner, str(paths.socket))
            await site.start()
        finally:
            os.umask(old_umask)
        os.chmod(paths.socket, 0o600)
        log.info("daemon_listening", socket=str(paths.socket), pid=os.getpid(), sessions=len(m.sessions))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("daemon_stopping")
    finally:
        if runner is not None:
            await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            paths.socket.unlink()
        await m.stop()
        lock.close()
