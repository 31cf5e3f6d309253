"""Where sshkeep keeps things: config, state, logs and runtime sockets.

`SSHKEEP_HOME`, when set, holds everything (one instance's world). Otherwise XDG. Unix socket
paths are limited to ~104 bytes, so a runtime dir that would be too long moves to a short,
deterministic path under /tmp.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

# ssh appends ".XXXXXXXXXXXXXXXX" to ControlPath while it creates the master, and %C is 40 hex chars.
_MAX_RUNTIME_DIR = 104 - len("/cm/") - 40 - 17 - 1


@dataclass(frozen=True)
class Paths:
    """Every path one sshkeep instance uses."""

    home: Path | None
    config_dir: Path
    state_dir: Path
    runtime_dir: Path
    socket: Path

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
    def tmux_args(self) -> list[str]:
        """Arguments that select our private tmux server (never the user's default one)."""
        if self.home is None:
            return ["-L", "sshkeep"]
        return ["-S", str(self.runtime_dir / "tmux.sock")]

    def attach_command(self, tmux_session: str | None = None) -> str:
        target = f" -t {tmux_session}" if tmux_session else ""
        return "tmux " + " ".join(self.tmux_args) + " attach" + target


def _short_runtime(seed: str) -> Path:
    digest = hashlib.sha256(seed.encode()).hexdigest()[:12]
    return Path(f"/tmp/sshkeep-{os.getuid()}-{digest}")


def resolve_paths(env: dict[str, str] | None = None) -> Paths:
    """Compute the paths from the environment (pure apart from checking /run/user)."""
    e = dict(os.environ) if env is None else env
    uid = os.getuid()
    home_env = e.get("SSHKEEP_HOME")
    if home_env:
        home = Path(home_env).expanduser().absolute()
        config_dir = home
        state_dir = home / "state"
        runtime_dir = home / "run"
        if len(str(runtime_dir)) > _MAX_RUNTIME_DIR:
            runtime_dir = _short_runtime(str(home))
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
        if len(str(runtime_dir)) > _MAX_RUNTIME_DIR:
            runtime_dir = _short_runtime(str(runtime_dir))
    socket_env = e.get("SSHKEEP_SOCKET")
    socket = Path(socket_env).expanduser().absolute() if socket_env else runtime_dir / "daemon.sock"
    return Paths(home, config_dir, state_dir, runtime_dir, socket)


def ensure_private_dir(path: Path) -> None:
    """Create `path` (and parents) and make it 0700; refuse one owned by someone else."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    st = path.stat()
    if st.st_uid != os.getuid():
        from sshkeep.common.errors import Forbidden

        raise Forbidden(f"{path} belongs to uid {st.st_uid}, not to you (uid {os.getuid()})")
    if st.st_mode & 0o077:
        path.chmod(0o700)
