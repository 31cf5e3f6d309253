"""Finding the daemon, and starting one that outlives the shim when none answers.

When a systemd user manager answers and `sshkeep service install` put a `sshkeep.service` there
for this instance, the manager starts the daemon (in its own cgroup, restarted on failure).
Otherwise the daemon is started in a new session (setsid), with stdio detached, so the MCP host
killing the shim's process group on shutdown never reaches it; and when a user manager answers,
in a transient scope of its own too, since setsid does not leave the cgroup of the MCP host's
unit or scope, which systemd may stop with everything in it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time

from sshkeep.common import systemd
from sshkeep.common.client import ApiClient
from sshkeep.common.errors import DaemonUnavailable, UnsafeRuntimeDir
from sshkeep.common.logs import rotate_daemon_log
from sshkeep.common.models.sessions import Health
from sshkeep.common.paths import Paths, ensure_private_dir, follow_record

START_TIMEOUT = 15.0


class SpawnFailed(DaemonUnavailable):
    """The spawned process exited with an error before a daemon answered."""


def spawn_daemon(paths: Paths, scope: bool = False) -> subprocess.Popen[bytes]:
    """Start `sshkeep daemon` detached from our session (and cgroup, with `scope`), logging to
    the state dir."""
    argv = [sys.executable, "-m", "sshkeep", "daemon"]
    if scope:
        argv = systemd.scope_argv("user-scope", f"sshkeep daemon ({paths.socket})", argv)
    ensure_private_dir(paths.state_dir)
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


async def ensure_daemon(client: ApiClient, paths: Paths) -> Health:
    """Return the daemon's health, starting a daemon first if none answers.

    A socket that is not safely ours (see `sshkeep.common.rundir`) is never used: the daemon we
    start moves to an unpredictable runtime dir and records it, and the client follows."""
    unsafe: UnsafeRuntimeDir | None = None
    try:
        return await client.health()
    except DaemonUnavailable:
        pass
    except UnsafeRuntimeDir as exc:
        unsafe = exc
        await client.retarget(follow_record(paths).socket)
        try:
            return await client.health()
        except (DaemonUnavailable, UnsafeRuntimeDir):
            pass
    try:
        return await _start(client, paths)
    except (DaemonUnavailable, UnsafeRuntimeDir):
        if unsafe is not None:
            raise unsafe from None
        raise


async def _start(client: ApiClient, paths: Paths) -> Health:
    manager = await systemd.user_manager_environment()
    if manager is not None and await systemd.daemon_unit_serves(paths, manager):
        return await _start_unit(client, paths)
    scope = manager is not None and shutil.which("systemd-run") is not None
    try:
        return await _spawn_and_wait(client, paths, scope)
    except SpawnFailed:
        if not scope:
            raise
    # `systemd-run --scope` itself can fail (no cgroup delegation): a plain setsid daemon still works.
    return await _spawn_and_wait(client, paths, False)


async def _spawn_and_wait(client: ApiClient, paths: Paths, scope: bool) -> Health:
    proc = await asyncio.to_thread(spawn_daemon, paths, scope)
    deadline = time.monotonic() + START_TIMEOUT
    last: DaemonUnavailable | UnsafeRuntimeDir | None = None
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        try:
            return await client.health()
        except DaemonUnavailable as exc:
            last = exc
        except UnsafeRuntimeDir as exc:
            # The daemon refuses that dir too: it records where it went instead.
            last = exc
            await client.retarget(follow_record(paths).socket)
        code = proc.poll()
        if code is not None and code != 0:
            # Another shim may have won the race for the lock: its daemon will answer soon.
            try:
                await asyncio.sleep(0.3)
                return await client.health()
            except DaemonUnavailable:
                raise SpawnFailed(
                    f"the sshkeep daemon exited with status {code} right after starting; "
                    f"see {paths.daemon_log}"
                ) from None
    raise DaemonUnavailable(
        f"started a daemon but it did not answer on {paths.socket} within {START_TIMEOUT:g}s"
        + (f" ({last.message})" if last else "")
        + f"; see {paths.daemon_log}"
    )


async def _start_unit(client: ApiClient, paths: Paths) -> Health:
    """`systemctl --user start sshkeep.service`: with Type=notify it returns once the daemon listens."""
    unit = systemd.DAEMON_UNIT
    code, _, err = await systemd.systemctl("start", unit, timeout=START_TIMEOUT + 60)
    if code == 0:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                return await client.health()
            except DaemonUnavailable:
                if time.monotonic() > deadline:
                    break
            await asyncio.sleep(0.05)
        problem = f"{unit} started but no daemon answers on {paths.socket}"
    else:
        problem = f"`systemctl --user start {unit}` failed: {err.strip() or f'exit status {code}'}"
    raise DaemonUnavailable(
        problem, hint=f"See `systemctl --user status {unit}` and `journalctl --user -u {unit}`."
    )
