"""Talking to the systemd user manager, when there is one, without blocking the event loop.

Both sides use it: the shim asks the manager to start `sshkeep.service` instead of spawning a
daemon, and the daemon asks it to start `sshkeep-tmux.service` (or a transient scope) so the tmux
server never lands in the daemon's cgroup, where a `systemctl restart` would kill every session.

An installed unit only counts when it serves *our* instance: its `Environment=` lines (written by
`sshkeep service install`) on top of the manager's environment must resolve to the same paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sshkeep.common.paths import Paths, resolve_paths

DAEMON_UNIT = "sshkeep.service"
TMUX_UNIT = "sshkeep-tmux.service"
SOCKET_UNIT = "sshkeep.socket"

TmuxPlacement = Literal["unit", "user-scope", "system-scope"]


def manager_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """Our environment plus what `systemctl --user` needs to find the manager.

    MCP hosts pass the shim only HOME/PATH/USER/…, without XDG_RUNTIME_DIR, yet the user
    manager's private socket is at /run/user/<uid>/systemd/private.
    """
    env = dict(os.environ if base is None else base)
    env.pop("TMUX", None)
    if not env.get("XDG_RUNTIME_DIR"):
        runtime = Path(f"/run/user/{os.getuid()}")
        if runtime.is_dir():
            env["XDG_RUNTIME_DIR"] = str(runtime)
    return env


async def run(
    argv: Sequence[str], timeout: float = 30.0, base_env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """Run one command; (returncode, stdout, stderr). 127 when it is missing, 124 on timeout.

    `base_env` replaces our own environment as the base (e.g. without variables secrets use)."""
    if shutil.which(argv[0]) is None:
        return 127, "", f"{argv[0]}: not found"
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=manager_env(base_env),
        )
    except OSError as exc:
        return 127, "", f"{argv[0]}: {exc}"
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return 124, "", f"{argv[0]} did not finish within {timeout:g}s"
    code = proc.returncode if proc.returncode is not None else 1
    return code, out.decode(errors="replace"), err.decode(errors="replace")


async def systemctl(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """`systemctl --user …`."""
    return await run(["systemctl", "--user", *args], timeout)


def parse_env_lines(text: str) -> dict[str, str]:
    """`KEY=value` lines (`systemctl show-environment`); values it had to quote are skipped."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not value.startswith("$'"):
            env[key] = value
    return env


async def user_manager_environment() -> dict[str, str] | None:
    """The user manager's environment, or None when no user manager answers."""
    if not sys.platform.startswith("linux"):
        return None
    code, out, _ = await systemctl("show-environment", timeout=10)
    return parse_env_lines(out) if code == 0 else None


@dataclass(frozen=True)
class UnitInfo:
    name: str
    load_state: str
    active_state: str
    sub_state: str
    unit_file_state: str
    fragment_path: str
    main_pid: int

    @property
    def installed(self) -> bool:
        return self.load_state == "loaded" and bool(self.fragment_path)


_PROPS = ("LoadState", "ActiveState", "SubState", "UnitFileState", "FragmentPath", "MainPID")


async def unit_info(name: str) -> UnitInfo | None:
    """What the user manager knows about a unit, or None when no user manager answers."""
    code, out, _ = await systemctl("show", "-p", ",".join(_PROPS), name, timeout=10)
    if code != 0:
        return None
    props = parse_env_lines(out)
    pid = props.get("MainPID", "0")
    return UnitInfo(
        name=name,
        load_state=props.get("LoadState", ""),
        active_state=props.get("ActiveState", ""),
        sub_state=props.get("SubState", ""),
        unit_file_state=props.get("UnitFileState", ""),
        fragment_path=props.get("FragmentPath", ""),
        main_pid=int(pid) if pid.isdigit() else 0,
    )


def unit_environment(text: str) -> dict[str, str]:
    """The `Environment=` assignments of a unit file's [Service] section, as we write them."""
    env: dict[str, str] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line
            continue
        if section != "[Service]" or not line.startswith("Environment="):
            continue
        try:
            words = shlex.split(line[len("Environment=") :])
        except ValueError:
            continue
        for word in words:
            key, sep, value = word.partition("=")
            if sep and key:
                env[key] = value.replace("%%", "%")
    return env


async def unit_paths(name: str, manager: dict[str, str]) -> Paths | None:
    """The paths a process of the installed user unit `name` resolves, or None if not installed."""
    info = await unit_info(name)
    if info is None or not info.installed:
        return None
    try:
        text = await asyncio.to_thread(Path(info.fragment_path).read_text)
    except OSError:
        return None
    return resolve_paths({**manager, **unit_environment(text)})


async def daemon_unit_serves(paths: Paths, manager: dict[str, str]) -> bool:
    """Whether the user manager (its environment: `manager`) has a `sshkeep.service` serving
    `paths.socket`."""
    unit = await unit_paths(DAEMON_UNIT, manager)
    return unit is not None and unit.socket == paths.socket


async def tmux_placement(server_args: Sequence[str]) -> TmuxPlacement | None:
    """Where a tmux server the daemon starts must go so that it outlives the daemon's unit.

    None when the daemon does not run under systemd (a forked, daemonized tmux is fine then).
    """
    if not os.environ.get("INVOCATION_ID") or not sys.platform.startswith("linux"):
        return None
    manager = await user_manager_environment()
    if manager is not None:
        unit = await unit_paths(TMUX_UNIT, manager)
        if unit is not None and unit.tmux_args == list(server_args):
            return "unit"
        return "user-scope" if shutil.which("systemd-run") else None
    # A system service (no user manager): root can still get a scope from the system manager.
    if os.getuid() == 0 and _booted_with_systemd() and shutil.which("systemd-run"):
        return "system-scope"
    return None


def _booted_with_systemd() -> bool:
    return Path("/run/systemd/system").is_dir()


def scope_argv(placement: TmuxPlacement, description: str, argv: Sequence[str]) -> list[str]:
    """`argv` wrapped in `systemd-run --scope`: its processes get a cgroup of their own."""
    user = ["--user"] if placement == "user-scope" else []
    return ["systemd-run", *user, "--scope", "--quiet", "--collect", f"--description={description}", *argv]
