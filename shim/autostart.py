"""Finding the daemon, and starting one that outlives the shim when none answers.

The daemon is started in a new session (setsid), with stdio detached, so the MCP host killing the
shim's process group on shutdown never reaches it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from common.client import ApiClient
from common.errors import DaemonUnavailable
from common.models import Health
from common.paths import Paths, ensure_private_dir

START_TIMEOUT = 15.0


def spawn_daemon(paths: Paths) -> subprocess.Popen[bytes]:
    """Start `sshkeep daemon` detached from our session, logging to the state dir."""
    ensure_private_dir(paths.state_dir)
    fd = os.open(paths.daemon_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "shim.cli", "daemon"],
            stdin=subprocess.DEVNULL,
            stdout=fd,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
            cwd="/",
        )
    finally:
        os.close(fd)


async def ensure_daemon(client: ApiClient, paths: Paths) -> Health:
    """Return the daemon's health, starting a daemon first if none answers."""
    try:
        return await client.health()
    except DaemonUnavailable:
        pass
    proc = await asyncio.to_thread(spawn_daemon, paths)
    deadline = time.monotonic() + START_TIMEOUT
    last: DaemonUnavailable | None = None
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        try:
            return await client.health()
        except DaemonUnavailable as exc:
            last = exc
        code = proc.poll()
        if code is not None and code != 0:
            # Another shim may have won the race for the lock: its daemon will answer soon.
            try:
                await asyncio.sleep(0.3)
                return await client.health()
            except DaemonUnavailable:
                raise DaemonUnavailable(
                    f"the sshkeep daemon exited with status {code} right after starting; "
                    f"see {paths.daemon_log}"
                ) from None
    raise DaemonUnavailable(
        f"started a daemon but it did not answer on {paths.socket} within {START_TIMEOUT:g}s"
        + (f" ({last.message})" if last else "")
        + f"; see {paths.daemon_log}"
    )
