"""`sshkeep service install|uninstall|status`: run the daemon and its tmux server as user services.

Two services, so that restarting the daemon never touches the sessions: the tmux server runs as
a job of its own (`sshkeep service tmux-server` execs `tmux … -D`), the daemon as another. On Linux
these are systemd user units (the daemon is Type=notify, Restart=on-failure), on macOS
LaunchAgents. The templates are the files in `systemd/` and `launchd/` (packaged in the wheel as
`shim/_units/…`); install fills in this installation's paths: the `sshkeep` launcher of the Python
that runs this command, and the environment that selects this instance (PATH, SSHKEEP_HOME, …).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from xml.sax.saxutils import escape

import libtmux

from sshkeep.common import systemd
from sshkeep.common.client import ApiClient
from sshkeep.common.errors import SshkeepError
from sshkeep.common.paths import Paths, ensure_private_dir, resolve_paths
from sshkeep.common.tmux import TMUX_CONF

Kind = Literal["systemd", "launchd"]
KINDS: tuple[Kind, ...] = ("systemd", "launchd")

# Variables that select the instance and find its tools; the service manager's own environment
# lacks what the user's shell had at install time.
PASSED_ENV = ("PATH", "SSHKEEP_HOME", "SSHKEEP_SOCKET", "XDG_CONFIG_HOME", "XDG_STATE_HOME")


@dataclass(frozen=True)
class UnitFile:
    name: str
    role: str


UNITS: dict[Kind, tuple[UnitFile, ...]] = {
    "systemd": (
        UnitFile(systemd.TMUX_UNIT, "the tmux server that holds the sessions"),
        UnitFile(systemd.DAEMON_UNIT, "the daemon: Type=notify, Restart=on-failure"),
        UnitFile(systemd.SOCKET_UNIT, "the daemon's socket: starts the daemon on first use"),
    ),
    "launchd": (
        UnitFile("sshkeep.tmux.plist", "the tmux server that holds the sessions"),
        UnitFile("sshkeep.daemon.plist", "the daemon, restarted when it fails"),
    ),
}


def default_kind() -> Kind:
    return "launchd" if sys.platform == "darwin" else "systemd"


def templates_dir(kind: Kind) -> Path:
    """The unit templates: in the wheel under shim/_units/, in a source tree at the top level."""
    shim = Path(__file__).resolve().parent.parent
    for base in (shim / "_units" / kind, shim.parent / kind):
        if (base / UNITS[kind][0].name).is_file():
            return base
    raise SshkeepError(
        f"the {kind} unit templates are missing "
        f"(looked in {shim / '_units' / kind} and {shim.parent / kind})",
        hint="Reinstall sshkeep (`pip install --force-reinstall sshkeep`).",
    )


def launcher() -> list[str]:
    """How a service starts this installation's `sshkeep`: the console script next to the
    running Python when there is one, else that Python itself (-P: never import from the cwd)."""
    script = Path(sys.executable).parent / "sshkeep"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-P", "-m", "sshkeep"]


def service_env(env: dict[str, str]) -> dict[str, str]:
    """The environment written into the units (absolute paths, so the unit never depends on a cwd)."""
    paths = resolve_paths(env)
    out: dict[str, str] = {}
    for key in PASSED_ENV:
        value = env.get(key)
        if not value:
            continue
        if key == "SSHKEEP_HOME" and paths.home is not None:
            value = str(paths.home)
        elif key == "SSHKEEP_SOCKET":
            value = str(paths.socket)
        elif key.startswith("XDG_"):
            value = str(Path(value).expanduser().absolute())
        out[key] = value
    return out


def install_dir(kind: Kind, env: dict[str, str]) -> Path:
    home = Path(env.get("HOME") or Path.home())
    if kind == "launchd":
        return home / "Library" / "LaunchAgents"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "systemd" / "user"


# --- rendering ------------------------------------------------------------------------------------


def systemd_word(word: str, exec_line: bool = False) -> str:
    """One word for a unit file: `%` specifiers (and `$` expansion on Exec lines) escaped, quoted
    when it holds a space, a quote, a backslash or `;`."""
    word = word.replace("%", "%%")
    if exec_line:
        word = word.replace("$", "$$")
    if word and not any(c.isspace() or c in "\"'\\;" for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(kind: Kind, env: dict[str, str], program: list[str] | None = None) -> dict[str, str]:
    """File name -> text of every unit of `kind` for the instance that `env` selects."""
    program = program or launcher()
    variables = service_env(env)
    paths = resolve_paths(env)
    base = templates_dir(kind)
    out: dict[str, str] = {}
    for unit in UNITS[kind]:
        text = (base / unit.name).read_text()
        if kind == "systemd":
            lines = [f"Environment={systemd_word(f'{k}={v}')}" for k, v in variables.items()]
            text = text.replace("@EXEC@", " ".join(systemd_word(w, exec_line=True) for w in program))
            text = text.replace("@ENVIRONMENT@\n", "".join(line + "\n" for line in lines))
            # ListenStream= takes the rest of the line as the path: specifiers, but no quoting.
            text = text.replace("@SOCKET@", str(paths.socket).replace("%", "%%"))
        else:
            text = text.replace("@PROGRAM@", "\n".join(f"    <string>{escape(w)}</string>" for w in program))
            pairs = [
                f"    <key>{escape(k)}</key>\n    <string>{escape(v)}</string>" for k, v in variables.items()
            ]
            text = text.replace("@ENVIRONMENT@", "\n".join(pairs))
            text = text.replace("@LOG@", escape(str(paths.daemon_log)))
        out[unit.name] = text
    return out


# --- install / uninstall / status -----------------------------------------------------------------


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    os.replace(tmp, path)


def enable_commands(kind: Kind, directory: Path) -> list[str]:
    if kind == "systemd":
        names = " ".join(u.name for u in UNITS[kind])
        return ["systemctl --user daemon-reload", f"systemctl --user enable --now {names}"]
    return [f"launchctl bootstrap gui/{os.getuid()} {directory / u.name}" for u in UNITS[kind]]


def install(kind: Kind, env: dict[str, str]) -> list[Path]:
    """Write the units for the instance `env` selects; return their paths."""
    directory = install_dir(kind, env)
    directory.mkdir(parents=True, exist_ok=True)
    # launchd opens the log before the daemon runs; systemd units log to the journal.
    ensure_private_dir(resolve_paths(env).state_dir)
    written = []
    for name, text in render(kind, env).items():
        path = directory / name
        _write(path, text)
        written.append(path)
    return written


def uninstall(kind: Kind, env: dict[str, str]) -> list[Path]:
    """Remove the units (and systemd's enablement links); return what was removed."""
    directory = install_dir(kind, env)
    removed = []
    for unit in UNITS[kind]:
        candidates = [directory / unit.name]
        if kind == "systemd":  # what `systemctl --user disable` would remove
            candidates += sorted(directory.glob(f"*.wants/{unit.name}"))
        for path in candidates:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def _read_or_none(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


async def _daemon_pid(paths: Paths) -> int | None:
    async with ApiClient(paths.socket, timeout=5) as client:
        try:
            return (await client.health()).pid
        except SshkeepError:
            return None


async def status(kind: Kind, env: dict[str, str]) -> dict[str, Any]:
    """What is installed, whether it is current, and what the service manager says about it."""
    directory = install_dir(kind, env)
    expected = render(kind, env)
    paths = resolve_paths(env)
    units: list[dict[str, Any]] = []
    for unit in UNITS[kind]:
        path = directory / unit.name
        text = await asyncio.to_thread(_read_or_none, path)
        entry: dict[str, Any] = {
            "name": unit.name,
            "role": unit.role,
            "path": str(path),
            "installed": text is not None,
            "current": text == expected[unit.name],
        }
        if kind == "systemd":
            info = await systemd.unit_info(unit.name)
            if info is not None:
                entry.update(
                    active=info.active_state,
                    sub=info.sub_state,
                    enabled=info.unit_file_state,
                    main_pid=info.main_pid or None,
                )
        units.append(entry)
    return {
        "kind": kind,
        "directory": str(directory),
        "units": units,
        "daemon_pid": await _daemon_pid(paths),
        "socket": str(paths.socket),
    }


# --- the tmux server of sshkeep-tmux.service ------------------------------------------------------


def server_of(paths: Paths, tmux: str) -> libtmux.Server:
    """Our private tmux server as libtmux sees it (a process per call: fine for a one-off check)."""
    flag, where = paths.tmux_args
    if flag == "-L":
        return libtmux.Server(socket_name=where, tmux_bin=tmux)
    return libtmux.Server(socket_path=where, tmux_bin=tmux)


def tmux_server(env: dict[str, str]) -> int:
    """Write the tmux config and exec `tmux <our server> -f <config> -D` (foreground server)."""
    paths = resolve_paths(env)
    tmux = shutil.which("tmux", path=env.get("PATH"))
    if tmux is None:
        print("sshkeep service tmux-server: tmux is not installed (no `tmux` on PATH)", file=sys.stderr)
        return 1
    child_env = {k: v for k, v in env.items() if k != "TMUX"}
    ensure_private_dir(paths.runtime_dir)
    if server_of(paths, tmux).is_alive():
        # A daemon started before the service was installed forked this server; `tmux -D` would
        # only fail as a client. Leave it be: it keeps the sessions, the daemon keeps using it.
        print(
            f"sshkeep service tmux-server: a tmux server already runs ({' '.join(paths.tmux_args)}); "
            "not starting a second one",
            file=sys.stderr,
        )
        return 0
    conf = paths.runtime_dir / "tmux.conf"  # the file the daemon's Tmux writes and passes with -f
    conf.write_text(TMUX_CONF)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(tmux, [tmux, *paths.tmux_args, "-f", str(conf), "-D"], child_env)


# --- CLI ------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    try:
        if args.service_cmd == "tmux-server":
            return tmux_server(env)
        if args.service_cmd == "install":
            return _print_install(args.kind, env)
        if args.service_cmd == "uninstall":
            return _print_uninstall(args.kind, env)
        return _print_status(args.kind, env, args.json)
    except SshkeepError as err:
        print(f"sshkeep service {args.service_cmd}: {err.message}\n{err.hint}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"sshkeep service {args.service_cmd}: {err}", file=sys.stderr)
        return 1


def _print_install(kind: Kind, env: dict[str, str]) -> int:
    written = install(kind, env)
    roles = {u.name: u.role for u in UNITS[kind]}
    width = max(len(str(p)) for p in written)
    for path in written:
        print(f"wrote {path!s:<{width}}  ({roles[path.name]})")
    directory = install_dir(kind, env)
    print("\nEnable and start them:")
    for line in enable_commands(kind, directory):
        print(f"  {line}")
    if kind == "systemd":
        print("Keep them running when you log out, and start them at boot:")
        print(f"  loginctl enable-linger {getpass.getuser()}")
        print("Restarting the daemon keeps every session: systemctl --user restart sshkeep.service")
    else:
        restart = f"launchctl kickstart -k gui/{os.getuid()}/sshkeep.daemon"
        print(f"Restarting the daemon keeps every session: {restart}")
    pid = asyncio.run(_daemon_pid(resolve_paths(env)))
    if pid is not None:
        print(
            f"\nNote: a daemon (pid {pid}) already serves {resolve_paths(env).socket}; the service cannot "
            f"start while it runs. Stop it first (`kill {pid}`: the sessions survive and the service's "
            "daemon adopts them)."
        )
    return 0


def _print_uninstall(kind: Kind, env: dict[str, str]) -> int:
    removed = uninstall(kind, env)
    if not removed:
        print(f"nothing to remove: no sshkeep units in {install_dir(kind, env)}")
        return 0
    for path in removed:
        print(f"removed {path}")
    print("\nServices that are running keep running until you stop them:")
    if kind == "systemd":
        print("  systemctl --user stop sshkeep.service        # the sessions survive")
        print("  systemctl --user stop sshkeep-tmux.service   # ends every session")
        print("  systemctl --user daemon-reload")
    else:
        uid = os.getuid()
        print(f"  launchctl bootout gui/{uid}/sshkeep.daemon   # the sessions survive")
        print(f"  launchctl bootout gui/{uid}/sshkeep.tmux     # ends every session")
    return 0


def _print_status(kind: Kind, env: dict[str, str], as_json: bool) -> int:
    report = asyncio.run(status(kind, env))
    installed = all(u["installed"] for u in report["units"])
    if as_json:
        print(json.dumps(report))
        return 0 if installed else 1
    for u in report["units"]:
        if not u["installed"]:
            state = "not installed"
        else:
            state = "installed" + ("" if u["current"] else " (outdated: run `sshkeep service install`)")
        if "active" in u:
            state += f"; {u['active']} ({u['sub']}), {u['enabled'] or 'unknown'}"
            if u["main_pid"]:
                state += f", pid {u['main_pid']}"
        print(f"{u['name']}: {state}\n  {u['path']}")
    pid = report["daemon_pid"]
    print(f"daemon: {'running, pid ' + str(pid) if pid else 'not running'} ({report['socket']})")
    if not installed:
        print("install them: sshkeep service install")
    return 0 if installed else 1
