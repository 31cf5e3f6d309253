"""sshkeep.common.paths: SSHKEEP_HOME, XDG, fallbacks, SSHKEEP_SOCKET, and short runtime dirs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from sshkeep.common.errors import Forbidden
from sshkeep.common.paths import ensure_private_dir, resolve_paths

UID = os.getuid()
# sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS/BSD.
SUN_PATH = 104


def test_sshkeep_home_holds_everything() -> None:
    home = Path("/tmp/skh")  # short enough for socket paths inside it (resolve_paths is pure)
    p = resolve_paths({"SSHKEEP_HOME": str(home), "XDG_RUNTIME_DIR": "/nowhere", "HOME": "/home/x"})
    assert p.home == home
    assert p.config_file == home / "config.yml"
    assert p.info_dir == home / "info"
    for path in (p.state_dir, p.runtime_dir, p.socket, p.logs_dir, p.db_file, p.control_dir):
        assert path.is_relative_to(home), path
    assert p.socket.parent == p.runtime_dir
    # Our own tmux server inside the home, never the user's default one.
    assert p.tmux_args == ["-S", str(p.runtime_dir / "tmux.sock")]
    assert p.attach_command("web-1a2b3c") == f"tmux -S {p.runtime_dir / 'tmux.sock'} attach -t web-1a2b3c"


def test_relative_sshkeep_home_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    p = resolve_paths({"SSHKEEP_HOME": "rel/home"})
    assert p.home == tmp_path / "rel" / "home"
    assert p.socket.is_absolute()


def test_xdg_directories() -> None:
    env = {
        "HOME": "/home/u",
        "XDG_CONFIG_HOME": "/cfg",
        "XDG_STATE_HOME": "/st",
        "XDG_RUNTIME_DIR": "/run/user/4242",
    }
    p = resolve_paths(env)
    assert p.home is None
    assert p.config_file == Path("/cfg/sshkeep/config.yml")
    assert p.state_dir == Path("/st/sshkeep")
    assert p.runtime_dir == Path("/run/user/4242/sshkeep")
    assert p.socket == Path("/run/user/4242/sshkeep/daemon.sock")
    assert p.tmux_args == ["-L", "sshkeep"]
    assert p.attach_command() == "tmux -L sshkeep attach"


def test_xdg_defaults_under_home() -> None:
    p = resolve_paths({"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/4242"})
    assert p.config_file == Path("/home/u/.config/sshkeep/config.yml")
    assert p.state_dir == Path("/home/u/.local/state/sshkeep")


def test_runtime_fallback_without_xdg_runtime_dir() -> None:
    # MCP clients pass only HOME/PATH/USER/SHELL/TERM/LOGNAME: the shim must still find the socket.
    p = resolve_paths({"HOME": "/home/u", "PATH": "/usr/bin", "USER": "u"})
    if Path(f"/run/user/{UID}").is_dir():
        assert p.runtime_dir == Path(f"/run/user/{UID}/sshkeep")
    else:
        assert p.runtime_dir == Path(f"/tmp/sshkeep-{UID}")
    assert p.socket == p.runtime_dir / "daemon.sock"


def test_empty_variables_count_as_unset() -> None:
    p = resolve_paths({"SSHKEEP_HOME": "", "SSHKEEP_SOCKET": "", "HOME": "/home/u", "XDG_RUNTIME_DIR": "/r"})
    assert p.home is None
    assert p.socket == Path("/r/sshkeep/daemon.sock")


def test_sshkeep_socket_overrides_only_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "elsewhere" / "d.sock"
    p = resolve_paths({"SSHKEEP_HOME": "/tmp/skh", "SSHKEEP_SOCKET": str(sock)})
    assert p.socket == sock
    assert p.runtime_dir == Path("/tmp/skh/run")
    p = resolve_paths({"HOME": "/home/u", "XDG_RUNTIME_DIR": "/r", "SSHKEEP_SOCKET": str(sock)})
    assert p.socket == sock and p.runtime_dir == Path("/r/sshkeep")


def test_long_sshkeep_home_gets_a_short_deterministic_runtime_dir(tmp_path: Path) -> None:
    home = tmp_path / ("x" * 120)
    assert len(str(home)) > 100
    p = resolve_paths({"SSHKEEP_HOME": str(home)})
    assert p.home == home and p.config_file == home / "config.yml" and p.state_dir == home / "state"
    assert str(p.runtime_dir).startswith(f"/tmp/sshkeep-{UID}-")
    assert len(str(p.socket).encode()) < SUN_PATH
    assert len(str(p.runtime_dir / "tmux.sock").encode()) < SUN_PATH
    # ssh's ControlPath: <control_dir>/%C (40 hex) plus a 17-byte temporary suffix while it binds.
    assert len(str(p.control_dir).encode()) + 1 + 40 + 17 < SUN_PATH
    # Deterministic: the shim and the daemon compute the same place; another home, another place.
    assert resolve_paths({"SSHKEEP_HOME": str(home)}).runtime_dir == p.runtime_dir
    assert resolve_paths({"SSHKEEP_HOME": str(home) + "2"}).runtime_dir != p.runtime_dir


def test_short_home_keeps_its_runtime_dir_inside() -> None:
    p = resolve_paths({"SSHKEEP_HOME": "/tmp/h"})
    assert p.runtime_dir == Path("/tmp/h/run")
    assert len(str(p.control_dir)) + 1 + 40 + 17 < SUN_PATH


def test_long_xdg_runtime_dir_is_shortened() -> None:
    p = resolve_paths({"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/" + "r" * 100})
    assert len(str(p.socket).encode()) < SUN_PATH
    assert str(p.runtime_dir).startswith(f"/tmp/sshkeep-{UID}-")


def test_ensure_private_dir(tmp_path: Path) -> None:
    d = tmp_path / "a" / "b"
    ensure_private_dir(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    d.chmod(0o755)
    ensure_private_dir(d)
    assert stat.S_IMODE(d.stat().st_mode) == 0o700


def test_ensure_private_dir_refuses_someone_elses(tmp_path: Path) -> None:
    d = tmp_path / "theirs"
    d.mkdir()
    other = 65534
    if UID == 0:
        os.chown(d, other, other)
    else:
        d, other = Path("/"), 0  # owned by root, so not ours
    with pytest.raises(Forbidden, match=f"uid {other}"):
        ensure_private_dir(d)
