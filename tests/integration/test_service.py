"""Running as a service: unit files, sd_notify, the tmux server in a job of its own, auto-start.

There is no systemd user manager in a test container, so the properties are tested with the real
processes instead: the unit files are checked by `systemd-analyze verify`; the daemon is started
with a real `$NOTIFY_SOCKET` datagram socket, as systemd does for Type=notify; the tmux unit's
command (`sshkeep service tmux-server`) runs the tmux server in the foreground, as systemd runs it;
and the restart property is shown by stopping and starting the daemon process.
"""

from __future__ import annotations

import contextlib
import json
import os
import plistlib
import shutil
import signal
import socket
import subprocess
import sys
import tomllib
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from sshkeep.common.models.sessions import CommandQuery, OpenSessionRequest, SendCommandRequest
from sshkeep.common.paths import ensure_private_dir, resolve_paths
from sshkeep.common.systemd import unit_environment
from sshkeep.shim.cli.service import UNITS, launcher, render
from tests.instance import REPO, Instance, clean_env, run_sshkeep
from tests.support import call, wait_until


def _stat_fields(pid: int) -> list[str]:
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()  # the fields after `pid (comm)`


def proc_stat(pid: int) -> dict[str, int]:
    """ppid, process group and session of a process, from /proc/<pid>/stat."""
    fields = _stat_fields(pid)
    return {"ppid": int(fields[1]), "pgrp": int(fields[2]), "sid": int(fields[3])}


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")


def alive(pid: int) -> bool:
    try:
        return _stat_fields(pid)[0] != "Z"
    except FileNotFoundError:
        return False


def service_env(**extra: str) -> dict[str, str]:
    """A clean environment with no XDG_ directories: the test gives HOME and XDG_CONFIG_HOME."""
    return clean_env("XDG_", **extra)


def sshkeep(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_sshkeep(*args, env=env)


def exec_start(text: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.startswith("ExecStart=")]
    return line.removeprefix("ExecStart=")


# --- unit files -----------------------------------------------------------------------------------


def test_install_status_uninstall_systemd(tmp_path: Path) -> None:
    env = service_env(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    unit_dir = tmp_path / "cfg" / "systemd" / "user"
    res = sshkeep(env, "service", "install", "--kind", "systemd")
    assert res.returncode == 0, res.stderr
    daemon = (unit_dir / "sshkeep.service").read_text()
    tmux = (unit_dir / "sshkeep-tmux.service").read_text()
    program = " ".join(launcher())
    assert program == str(Path(sys.executable).parent / "sshkeep")  # the venv's console script
    assert exec_start(daemon) == f"{program} daemon"
    assert exec_start(tmux) == f"{program} service tmux-server"
    for text in (daemon, tmux):
        assert unit_environment(text)["XDG_CONFIG_HOME"] == str(tmp_path / "cfg")
        assert unit_environment(text)["PATH"] == env["PATH"]
        assert "SSHKEEP_HOME" not in unit_environment(text)
    assert "Type=notify" in daemon.splitlines() and "Restart=on-failure" in daemon.splitlines()
    assert "Wants=sshkeep-tmux.service" in daemon.splitlines()
    # The commands to run next, and the linger hint.
    assert "systemctl --user daemon-reload" in res.stdout
    assert "systemctl --user enable --now sshkeep-tmux.service sshkeep.service sshkeep.socket" in res.stdout
    socket_unit = (unit_dir / "sshkeep.socket").read_text()
    assert f"ListenStream={resolve_paths(env).socket}" in socket_unit.splitlines()
    assert "SocketMode=0600" in socket_unit.splitlines()
    assert "loginctl enable-linger " in res.stdout
    assert "systemctl --user restart sshkeep.service" in res.stdout

    res = sshkeep(env, "service", "status", "--kind", "systemd", "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert [(u["name"], u["installed"], u["current"]) for u in report["units"]] == [
        ("sshkeep-tmux.service", True, True),
        ("sshkeep.service", True, True),
        ("sshkeep.socket", True, True),
    ]
    assert report["daemon_pid"] is None

    # `systemctl --user enable` would have made these links; uninstall removes them too.
    wants = unit_dir / "default.target.wants"
    wants.mkdir()
    (wants / "sshkeep.service").symlink_to(unit_dir / "sshkeep.service")
    res = sshkeep(env, "service", "uninstall", "--kind", "systemd")
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in unit_dir.rglob("*")) == ["default.target.wants"]
    assert "systemctl --user stop sshkeep-tmux.service" in res.stdout
    res = sshkeep(env, "service", "status", "--kind", "systemd")
    assert res.returncode == 1
    assert "sshkeep.service: not installed" in res.stdout
    assert "sshkeep service install" in res.stdout


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install the `systemd` package (tests/run.sh does)"
    # A home with a space and a `%` (`%z` is no specifier: unescaped, verify would refuse it).
    home = tmp_path / "sk home %z"
    env = service_env(HOME=str(tmp_path / "home"), SSHKEEP_HOME=str(home))
    res = sshkeep(env, "service", "install", "--kind", "systemd")
    assert res.returncode == 0, res.stderr
    unit_dir = tmp_path / "home" / ".config" / "systemd" / "user"
    files = sorted(unit_dir.iterdir())
    assert [f.name for f in files] == ["sshkeep-tmux.service", "sshkeep.service", "sshkeep.socket"]
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700)
    verify = subprocess.run(
        [analyze, "--user", "--man=no", "verify", *map(str, files)],
        env={**env, "XDG_RUNTIME_DIR": str(runtime)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    # verify exits 0 even for ignored lines (unknown keys, bad values): any complaint fails.
    complaints = [line for line in verify.stderr.splitlines() if "sshkeep" in line]
    assert complaints == []
    # What the daemon and the shim read back from the unit resolves to the same instance.
    for f in files[:2]:
        unit_env = unit_environment(f.read_text())
        assert unit_env["SSHKEEP_HOME"] == str(home)
        assert resolve_paths({"HOME": env["HOME"], **unit_env}).socket == resolve_paths(env).socket


def test_install_launchd_plists(tmp_path: Path) -> None:
    env = service_env(HOME=str(tmp_path / "home"), SSHKEEP_HOME=str(tmp_path / "a&b <c>"))
    res = sshkeep(env, "service", "install", "--kind", "launchd")
    assert res.returncode == 0, res.stderr
    agents = tmp_path / "home" / "Library" / "LaunchAgents"
    daemon = plistlib.loads((agents / "sshkeep.daemon.plist").read_bytes())
    tmux = plistlib.loads((agents / "sshkeep.tmux.plist").read_bytes())
    assert daemon["Label"] == "sshkeep.daemon" and tmux["Label"] == "sshkeep.tmux"
    assert daemon["ProgramArguments"] == [*launcher(), "daemon"]
    assert tmux["ProgramArguments"] == [*launcher(), "service", "tmux-server"]
    for plist in (daemon, tmux):
        assert plist["EnvironmentVariables"]["SSHKEEP_HOME"] == str(tmp_path / "a&b <c>")
        assert plist["KeepAlive"] == {"SuccessfulExit": False}  # restarted when it fails
        assert plist["StandardErrorPath"] == str(resolve_paths(env).daemon_log)
    assert daemon["AbandonProcessGroup"] is True
    assert f"launchctl bootstrap gui/{os.getuid()} {agents / 'sshkeep.daemon.plist'}" in res.stdout


def test_wheel_carries_the_templates(tmp_path: Path) -> None:
    """pyproject maps systemd/ and launchd/ into the wheel where sshkeep.shim.cli.service looks for them,
    and a service installed from the wheel alone (no source tree) renders the same units."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    include = config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]
    assert include["systemd"] == "shim/_units/systemd" and include["launchd"] == "shim/_units/launchd"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(REPO)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("sshkeep-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        for kind, units in UNITS.items():
            for unit in units:
                assert f"sshkeep/shim/_units/{kind}/{unit.name}" in names
        z.extractall(site)
    script = (
        "import json, os, sshkeep.shim.cli.service as s; print(json.dumps("
        "[s.__file__, str(s.templates_dir('systemd')), s.render('systemd', dict(os.environ))]))"
    )
    env = service_env(HOME=str(tmp_path / "home"), PYTHONPATH=str(site))
    out = subprocess.run(
        [sys.executable, "-P", "-c", script],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    module, templates, rendered = json.loads(out.stdout)
    assert module == str(site / "sshkeep" / "shim" / "cli" / "service.py")  # not the source tree
    assert templates == str(site / "sshkeep" / "shim" / "_units" / "systemd")
    assert rendered == render("systemd", env)


# --- sd_notify ------------------------------------------------------------------------------------


@pytest.fixture
def notify_socket() -> Iterator[tuple[socket.socket, str]]:
    """A datagram socket in the abstract namespace, like the one systemd passes as `@…`."""
    name = f"sshkeep-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(60)
    try:
        yield sock, "@" + name
    finally:
        sock.close()


def test_daemon_notifies_ready_after_listening_and_stopping(
    idle_instance: Instance, notify_socket: tuple[socket.socket, str]
) -> None:
    sock, address = notify_socket
    inst = idle_instance
    log = open(inst.home / "daemon.stderr", "ab")  # noqa: SIM115 - handed to the child
    inst.proc = subprocess.Popen(
        [sys.executable, "-m", "sshkeep", "daemon"],
        env={**inst.env, "NOTIFY_SOCKET": address}, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    ready = sock.recv(4096).decode().split("\n")
    assert "READY=1" in ready and f"MAINPID={inst.proc.pid}" in ready
    assert any(a.startswith("STATUS=serving 0 sessions") for a in ready), ready
    # READY comes only once the socket answers: a `systemctl start` returning means usable.
    assert inst.curl("/v1/health")[0] == 200
    # Children (the tmux control client) do not inherit $NOTIFY_SOCKET.
    children = [
        int(p.name) for p in Path("/proc").iterdir()
        if p.name.isdigit() and alive(int(p.name)) and proc_stat(int(p.name))["ppid"] == inst.proc.pid
    ]  # fmt: skip
    assert children, "the daemon runs a tmux control client"
    for pid in children:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            assert b"NOTIFY_SOCKET=" not in Path(f"/proc/{pid}/environ").read_bytes()

    inst.proc.send_signal(signal.SIGTERM)
    stopping = sock.recv(4096).decode().split("\n")
    assert "STOPPING=1" in stopping
    assert inst.proc.wait(30) == 0  # a clean stop: Restart=on-failure does not restart it


def start_activated(inst: Instance, listener: socket.socket) -> subprocess.Popen[bytes]:
    """What systemd does for sshkeep.socket: the listening socket as fd 3, $LISTEN_PID/$LISTEN_FDS."""
    fd = listener.fileno()
    script = f'exec 3<&{fd} {fd}<&-; export LISTEN_PID=$$ LISTEN_FDS=1; exec "$@"'
    log = open(inst.home / "daemon.stderr", "ab")  # noqa: SIM115 - handed to the child
    proc = subprocess.Popen(
        ["bash", "-c", script, "bash", sys.executable, "-m", "sshkeep", "daemon"],
        env=inst.env, pass_fds=(fd,), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    log.close()
    return proc


@pytest.fixture
def listener(idle_instance: Instance) -> Iterator[socket.socket]:
    """The daemon's socket, bound and listening as sshkeep.socket makes systemd do."""
    path = idle_instance.paths.socket
    ensure_private_dir(path.parent)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(64)
    try:
        yield sock
    finally:
        sock.close()
        path.unlink(missing_ok=True)


def raw_health(sock: socket.socket) -> dict[str, Any]:
    sock.settimeout(60)
    sock.sendall(b"GET /v1/health HTTP/1.0\r\nHost: localhost\r\n\r\n")
    reply = b""
    while chunk := sock.recv(65536):
        reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"200", reply
    return dict(json.loads(body))


def test_socket_activation_queues_connections_across_restarts(
    idle_instance: Instance, listener: socket.socket
) -> None:
    inst = idle_instance
    path = inst.paths.socket
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # Connected before any daemon runs: it waits in the backlog and is answered.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as early:
            early.connect(str(path))
            procs.append(start_activated(inst, listener))
            health = raw_health(early)
        assert health["pid"] == procs[0].pid and health["socket"] == str(path)
        assert inst.curl("/v1/health")[0] == 200

        # Stopping the daemon leaves the socket to systemd: still there, still accepting.
        procs[0].send_signal(signal.SIGTERM)
        assert procs[0].wait(30) == 0
        assert path.is_socket() and path.stat().st_mode & 0o777 == 0o600
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as waiting:
            waiting.connect(str(path))  # while no daemon runs
            procs.append(start_activated(inst, listener))
            assert raw_health(waiting)["pid"] == procs[1].pid
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)


def test_socket_activation_for_another_path_is_refused(idle_instance: Instance, tmp_path: Path) -> None:
    other = tmp_path / "other.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(other))
        sock.listen(1)
        proc = start_activated(idle_instance, sock)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    message = err.decode()
    assert f"socket activation passed '{other}'" in message
    assert str(idle_instance.paths.socket) in message and "sshkeep service install" in message


# --- the restart property -------------------------------------------------------------------------


async def open_with_running_command(inst: Instance) -> tuple[str, str]:
    async with inst.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        r = await c.send_command(sid, SendCommandRequest(command="sleep 5; echo survived", timeout=0.5))
        assert r.status == "running", r
        return sid, r.command_id


async def assert_survived(inst: Instance, sid: str, cid: str) -> None:
    async with inst.client() as c:
        assert sid in [s.session_id for s in (await c.list_sessions()).sessions]
        r = await c.get_command(sid, cid, CommandQuery(wait=30))
        assert (r.status, r.exit_code, r.output) == ("completed", 0, "survived"), r
        again = await c.send_command(sid, SendCommandRequest(command="echo still-$((6*7))"))
        assert again.output == "still-42"


async def test_restarting_the_daemon_keeps_sessions(instance: Instance) -> None:
    sid, cid = await open_with_running_command(instance)
    tmux_pid = instance.tmux_server_pid()
    daemon_pid = instance.daemon_pid()

    instance.stop()  # what `systemctl --user restart sshkeep.service` does to the daemon
    assert alive(tmux_pid)
    instance.start()

    assert instance.daemon_pid() != daemon_pid
    await assert_survived(instance, sid, cid)
    assert instance.tmux_server_pid() == tmux_pid


def start_tmux_unit(inst: Instance) -> subprocess.Popen[bytes]:
    """What systemd does for sshkeep-tmux.service: run its command in a session of its own."""
    return subprocess.Popen(
        [sys.executable, "-m", "sshkeep", "service", "tmux-server"],
        env=inst.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


@pytest.fixture
def tmux_unit(idle_instance: Instance) -> Iterator[subprocess.Popen[bytes]]:
    server = start_tmux_unit(idle_instance)
    try:
        yield server
    finally:
        server.terminate()  # `systemctl --user stop sshkeep-tmux.service`
        server.wait(30)


async def test_daemon_uses_the_tmux_units_server(
    idle_instance: Instance, tmux_unit: subprocess.Popen[bytes]
) -> None:
    """sshkeep-tmux.service's command runs the server in the foreground; the daemon only uses it."""
    inst = idle_instance
    wait_until(lambda: inst.tmux("list-sessions").returncode == 0, "the tmux unit's server")
    assert inst.tmux_server_pid() == tmux_unit.pid  # exec'd: the unit's main process is tmux itself
    inst.start()
    assert inst.tmux_server_pid() == tmux_unit.pid
    sid, cid = await open_with_running_command(inst)

    inst.stop()
    assert tmux_unit.poll() is None
    inst.start()
    await assert_survived(inst, sid, cid)
    assert inst.tmux_server_pid() == tmux_unit.pid

    # Starting the unit again while a server runs leaves that server (and its sessions) alone.
    again = inst.cli("service", "tmux-server")
    assert again.returncode == 0 and "already runs" in again.stderr
    assert inst.tmux_server_pid() == tmux_unit.pid


# --- auto-start -----------------------------------------------------------------------------------


async def test_autostarted_daemon_leaves_the_shims_session(idle_instance: Instance) -> None:
    inst = idle_instance
    async with Client(inst.mcp_params()) as c:
        assert (await call(c, "list_sessions"))["sessions"] == []
        daemon_pid = inst.daemon_pid()
        assert daemon_pid is not None
        daemon = proc_stat(daemon_pid)
        shim_pid = daemon["ppid"]  # the shim spawned it
        shim = proc_stat(shim_pid)
        assert "-m sshkeep mcp" in cmdline(shim_pid)
        # Its own session and process group: the client's killpg of the shim cannot reach it.
        assert daemon["sid"] == daemon_pid and daemon["pgrp"] == daemon_pid
        assert daemon["sid"] != shim["sid"] and daemon["pgrp"] != shim["pgrp"]
        sid = (await call(c, "open_session", {"host": "bash"}))["session_id"]

    wait_until(lambda: not alive(shim_pid), "the MCP client to end the shim")
    assert alive(daemon_pid)
    assert inst.daemon_pid() == daemon_pid
    async with Client(inst.mcp_params()) as c:  # the next client finds the same daemon
        sessions = (await call(c, "list_sessions"))["sessions"]
        assert [s["session_id"] for s in sessions] == [sid]
        out = await call(c, "send_command", {"session_id": sid, "command": "echo after-client"})
        assert out["output"] == "after-client"
    assert inst.daemon_pid() == daemon_pid
