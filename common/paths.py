"""Where sshkeep keeps things: config, state, logs and runtime sockets.

`SSHKEEP_HOME`, when set, holds everything (one instance's world). Otherwise XDG. Unix socket
paths are limited to ~104 bytes, so a runtime dir that would be too long moves to a short,
deterministic path under /tmp. Such a /tmp path (and `/tmp/sshkeep-$UID`, the fallback when there is
no XDG_RUNTIME_DIR or /run/user/$UID) is guessable, so another user may have made it first: the
daemon then uses an unpredictable dir and records it in the state dir (see `sshkeep.common.rundir`),
and `resolve_paths` follows that record.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from sshkeep.common.rundir import make_private_dir, read_record, record_lock, write_record

# ssh appends ".XXXXXXXXXXXXXXXX" to ControlPath while it creates the master, and %C is 40 hex chars.
_MAX_RUNTIME_DIR = 104 - len("/cm/") - 40 - 17 - 1


class Paths(NamedTuple):
    """Every path one sshkeep instance uses (a NamedTuple: `dataclasses` and the `inspect` it
    imports cost `sshkeep status` a quarter of its start-up)."""

    home: Path | None
    config_dir: Path
    state_dir: Path
    runtime_dir: Path
    socket: Path
    # The guessable /tmp runtime dir this instance falls back to (None: the runtime dir is not one).
    fallback: Path | None = None

    @property
    def config_file(self) -> Path:
        return self.config_dir / "config.yml"

    @property
    def info_dir(self) -> Path:
        return self.config_dir / "info"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def db_file(self) -> Path:
        return self.state_dir / "state.db"

    @property
    def daemon_log(self) -> Path:
        return self.state_dir / "daemon.log"

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def control_dir(self) -> Path:
        return self.runtime_dir / "cm"

    @property
    def writer_socket(self) -> Path:
        """Where the log writers' host listens (daemon/sessions/writerhost.py)."""
        return self.runtime_dir / "lw.sock"

    @property
    def tmux_args(self) -> list[str]:
        """Arguments that select our private tmux server (never the user's default one)."""
        if self.home is None:
            return ["-L", "sshkeep"]
        return ["-S", str(self.runtime_dir / "tmux.sock")]

    def attach_command(self, tmux_session: str | None = None) -> str:
        target = f" -t {tmux_session}" if tmux_session else ""
        return "tmux " + " ".join(self.tmux_args) + " attach" + target


def _short_runtime(seed: str) -> Path:
    import hashlib  # here: most commands never need it, and `sshkeep status` starts faster

    digest = hashlib.sha256(seed.encode()).hexdigest()[:12]
    return Path(f"/tmp/sshkeep-{os.getuid()}-{digest}")


def follow_record(paths: Paths) -> Paths:
    """`paths` with the runtime dir the daemon recorded, when the guessable fallback was taken."""
    if paths.fallback is None:
        return paths
    runtime_dir = read_record(paths.state_dir) or paths.fallback
    return paths if runtime_dir == paths.runtime_dir else _with_runtime(paths, runtime_dir)


def resolve_paths(env: dict[str, str] | None = None) -> Paths:
    """Compute the paths from the environment (reads only /run/user and the runtime-dir record)."""
    e = dict(os.environ) if env is None else env
    uid = os.getuid()
    home_env = e.get("SSHKEEP_HOME")
    fallback = False
    if home_env:
        home = Path(home_env).expanduser().absolute()
        config_dir = home
        state_dir = home / "state"
        runtime_dir = home / "run"
        if len(str(runtime_dir)) > _MAX_RUNTIME_DIR:
            runtime_dir = _short_runtime(str(home))
            fallback = True
    else:
        home = None
        user_home = Path(e.get("HOME") or Path.home())
        config_dir = Path(e.get("XDG_CONFIG_HOME") or user_home / ".config") / "sshkeep"
        state_dir = Path(e.get("XDG_STATE_HOME") or user_home / ".local" / "state") / "sshkeep"
        xdg_runtime = e.get("XDG_RUNTIME_DIR")
        if xdg_runtime:
            runtime_dir = Path(xdg_runtime) / "sshkeep"
        elif Path(f"/run/user/{uid}").is_dir():
            runtime_dir = Path(f"/run/user/{uid}") / "sshkeep"
        else:
            runtime_dir = Path(f"/tmp/sshkeep-{uid}")
            fallback = True
        if len(str(runtime_dir)) > _MAX_RUNTIME_DIR:
            runtime_dir = _short_runtime(str(runtime_dir))
            fallback = True
    socket_env = e.get("SSHKEEP_SOCKET")
    socket = Path(socket_env).expanduser().absolute() if socket_env else runtime_dir / "daemon.sock"
    return follow_record(
        Paths(home, config_dir, state_dir, runtime_dir, socket, runtime_dir if fallback else None)
    )


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it 0700; refuse one owned by someone else."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.getuid():
        from sshkeep.common.errors import Forbidden

        raise Forbidden(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})")
    if st.st_mode & 0o077:
        path.chmod(0o700)


def claim_runtime_dir(paths: Paths) -> tuple[Paths, str | None]:
    """The daemon's runtime dir, safely ours: the usual one, or an unpredictable one when the
    guessable fallback was taken by someone else (recorded for clients). Also returns why the
    usual dir was refused (None when it was fine).

    Raises `UnsafeRuntimeDir` when a configured (not guessable) runtime dir is not ours."""
    from sshkeep.common.errors import UnsafeRuntimeDir

    problem = make_private_dir(paths.runtime_dir)
    if problem is None:
        return paths, None
    if paths.fallback is None:
        raise UnsafeRuntimeDir(problem)
    ensure_private_dir(paths.state_dir)
    with record_lock(paths.state_dir):
        # Another daemon may have chosen (and recorded) a dir meanwhile; then so do we.
        for candidate in (read_record(paths.state_dir), paths.fallback):
            if candidate is None or candidate == paths.runtime_dir:
                continue
            if make_private_dir(candidate) is None:
                write_record(paths.state_dir, None if candidate == paths.fallback else candidate)
                return _with_runtime(paths, candidate), problem
        import tempfile  # only when both usual dirs are taken: it costs every command ~5 ms to load

        chosen = Path(tempfile.mkdtemp(prefix=f"sshkeep-{os.getuid()}-", dir="/tmp"))  # 0700, atomic
        write_record(paths.state_dir, chosen)
    return _with_runtime(paths, chosen), problem


def _with_runtime(paths: Paths, runtime_dir: Path) -> Paths:
    default_socket = paths.socket == paths.runtime_dir / "daemon.sock"
    return paths._replace(
        runtime_dir=runtime_dir, socket=runtime_dir / "daemon.sock" if default_socket else paths.socket
    )
