"""Connections: config entries, server info, password and passphrase logins that never leak
the secret, host keys, jump hosts, connect failures, keyboard-interactive prompts, reconnect.

Everything runs against real sshd processes: the session fixture's, plus (module fixtures here)
a target sshd in its own network namespace reachable only through a bastion, and an sshd with
PAM for keyboard-interactive logins.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mcp import Client

from sshkeep.common.errors import BadRequest, ConnectFailed, NotFound, SessionDisconnected
from sshkeep.common.models.configs import ConfigList, ServerInfo
from sshkeep.common.models.sessions import (
    OpenSessionRequest,
    ReconnectRequest,
    SendCommandRequest,
    SendKeysRequest,
    SnapshotQuery,
)
from tests.instance import Instance
from tests.sshd import SshServer, banner_ok, descendants, die_with_parent, signal_all
from tests.support import eventually, text_of, wait_state

SSHD = shutil.which("sshd", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") or "/usr/sbin/sshd"


# --- helpers ------------------------------------------------------------------------------------------


def tmux_sessions(inst: Instance) -> list[str]:
    """The session ids with a tmux session (not the daemon's own control session)."""
    out = inst.tmux("list-sessions", "-F", "#{session_name}")
    return [name for name in out.stdout.split() if not name.startswith("_")] if out.returncode == 0 else []


def key_options(known_hosts: Path) -> dict[str, str]:
    return {
        "UserKnownHostsFile": str(known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes",
        "IdentitiesOnly": "yes",
        "PasswordAuthentication": "no",
        "KbdInteractiveAuthentication": "no",
    }


def keygen(path: Path, passphrase: str = "") -> str:
    """A new ed25519 key at `path`; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "sk-test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return Path(f"{path}.pub").read_text().strip()


def encrypted_copy(key: Path, dest: Path, passphrase: str) -> Path:
    """`key` protected by `passphrase` (the same key: the sshd accepts it already)."""
    shutil.copy(key, dest)
    dest.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-P", "", "-N", passphrase, "-f", str(dest)], check=True)
    return dest


@dataclass
class ProcWatcher:
    """Scans every process's argv and environment, over and over, for `secret` (in a thread)."""

    secret: bytes
    hits: list[str] = field(default_factory=list)
    ssh_seen: set[str] = field(default_factory=set)
    rounds: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _scan(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                for what in ("cmdline", "environ"):
                    try:
                        data = Path(entry.path, what).read_bytes()
                    except OSError:
                        continue
                    if self.secret in data:
                        self.hits.append(f"/proc/{entry.name}/{what}")
                    if what == "cmdline" and data.startswith(b"ssh\0") and b"ControlPath=" in data:
                        self.ssh_seen.add(entry.name)
            self.rounds += 1
            time.sleep(0.002)  # leave the loaded machine's CPUs to the login being watched

    def __enter__(self) -> ProcWatcher:
        self._thread = threading.Thread(target=self._scan, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)


def files_containing(root: Path, secret: bytes, skip: set[Path]) -> list[str]:
    found = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if path in skip or not path.is_file():
                continue
            with contextlib.suppress(OSError):
                if secret in path.read_bytes():
                    found.append(str(path))
    return found


# --- extra sshd servers ----------------------------------------------------------------------------


def _sshd_config(host_key: Path, authorized_keys: Path, *lines: str) -> str:
    """Settings as the session fixture's sshd has them; `lines` (first occurrence wins) go first."""
    return "\n".join(
        [
            *lines,
            f"HostKey {host_key}",
            f"AuthorizedKeysFile {authorized_keys}",
            "StrictModes no",
            "PubkeyAuthentication yes",
            "PasswordAuthentication yes",
            "PermitEmptyPasswords no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin yes",
            "MaxAuthTries 10",
            "MaxStartups 100:30:200",
            "LoginGraceTime 30",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "LogLevel VERBOSE",
            "",
        ]
    )


# Run inside a fresh network namespace: bring its loopback up (SIOCSIFFLAGS, IFF_UP | IFF_LOOPBACK;
# no iproute2 needed), then become the command given as arguments.
_LO_UP_THEN_EXEC = (
    "import fcntl, os, socket, struct, sys; "
    "fcntl.ioctl(socket.socket(), 0x8914, struct.pack('16sH22x', b'lo', 0x1 | 0x8)); "
    "os.execv(sys.argv[1], sys.argv[1:])"
)


def _stop_tree(proc: subprocess.Popen[bytes]) -> None:
    pids = descendants(proc.pid)
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    signal_all(pids, signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class Extra:
    """An extra server's address and the known_hosts file that pins its host key."""

    host: str
    port: int
    known_hosts: Path


@dataclass
class JumpPair:
    bastion: Extra
    target: Extra
    target_netns: str  # the target's network namespace, as `readlink /proc/<pid>/ns/net` shows it


class _Workdir:
    def __init__(self, sshd: SshServer, root: Path) -> None:
        self.root = root
        # sshd reads authorized_keys as the target user: a world-readable dir outside pytest's tmp.
        self.keys_dir = Path(tempfile.mkdtemp(prefix="sshkeep-test-keys-"))
        self.keys_dir.chmod(0o755)
        self.authorized_keys = self.keys_dir / "authorized_keys"
        self.authorized_keys.write_text(Path(f"{sshd.client_key}.pub").read_text())
        self.authorized_keys.chmod(0o644)

    def host_key(self, name: str) -> tuple[Path, str]:
        path = self.root / name
        pub = keygen(path).split()
        return path, f"{pub[0]} {pub[1]}"


@pytest.fixture(scope="module")
def jump_pair(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JumpPair]:
    """A target sshd inside its own network namespace, and a bastion sshd that can reach it.

    The target listens on 127.0.0.2:2222 in a namespace of its own: from here that address
    refuses every connection. The bastion is `sshd -i` started inside the target's namespace for
    each connection accepted on 127.0.0.1 here (inetd style), so only the bastion reaches it.
    """
    wd = _Workdir(sshd, tmp_path_factory.mktemp("jump"))
    procs: list[subprocess.Popen[bytes]] = []
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stop = threading.Event()
    try:
        t_key, t_pub = wd.host_key("target_host_key")
        b_key, b_pub = wd.host_key("bastion_host_key")
        pidfile = wd.root / "target.pid"
        t_conf = wd.root / "target_config"
        t_conf.write_text(
            _sshd_config(
                t_key, wd.authorized_keys, "ListenAddress 127.0.0.2", "Port 2222", f"PidFile {pidfile}"
            )
        )
        b_conf = wd.root / "bastion_config"
        b_conf.write_text(_sshd_config(b_key, wd.authorized_keys, "PidFile none"))
        log = open(wd.root / "sshd.log", "ab")  # noqa: SIM115 - closed at teardown
        target = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--",
                sys.executable,
                "-c",
                _LO_UP_THEN_EXEC,
                SSHD,
                "-D",
                "-e",
                "-f",
                str(t_conf),
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        procs.append(target)
        deadline = time.monotonic() + 15
        while not pidfile.exists():  # sshd writes it once it listens
            if target.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"target sshd did not start: {(wd.root / 'sshd.log').read_text()}")
            time.sleep(0.05)
        netns = f"/proc/{target.pid}/ns/net"

        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listener.settimeout(0.2)
        b_port = listener.getsockname()[1]

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                with conn:
                    conn.setblocking(True)
                    procs.append(
                        subprocess.Popen(
                            ["nsenter", f"--net={netns}", "--", SSHD, "-i", "-e", "-f", str(b_conf)],
                            stdin=conn,
                            stdout=conn,
                            stderr=log,
                            preexec_fn=die_with_parent,
                        )
                    )

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        known_hosts = wd.root / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{b_port} {b_pub}\n[127.0.0.2]:2222 {t_pub}\n")
        assert banner_ok(b_port), (wd.root / "sshd.log").read_text()
        yield JumpPair(
            bastion=Extra("127.0.0.1", b_port, known_hosts),
            target=Extra("127.0.0.2", 2222, known_hosts),
            target_netns=os.readlink(netns),
        )
    finally:
        stop.set()
        listener.close()
        for proc in reversed(procs):
            _stop_tree(proc)
        shutil.rmtree(wd.keys_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def pam_sshd(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Extra]:
    """An sshd whose only password method is keyboard-interactive through PAM (pam_unix)."""
    wd = _Workdir(sshd, tmp_path_factory.mktemp("pam"))
    proc: subprocess.Popen[bytes] | None = None
    try:
        key, pub = wd.host_key("host_key")
        for _attempt in range(5):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                port = probe.getsockname()[1]
            conf = wd.root / "sshd_config"
            conf.write_text(
                _sshd_config(
                    key,
                    wd.authorized_keys,
                    "ListenAddress 127.0.0.1",
                    f"Port {port}",
                    "PidFile none",
                    "UsePAM yes",
                    "KbdInteractiveAuthentication yes",
                    "PasswordAuthentication no",
                )
            )
            with open(wd.root / "sshd.log", "ab") as log:
                proc = subprocess.Popen(
                    [SSHD, "-D", "-e", "-f", str(conf)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    preexec_fn=die_with_parent,
                )
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline and not banner_ok(port):
                time.sleep(0.05)
            if proc.poll() is None and banner_ok(port):
                break
            _stop_tree(proc)
        else:
            pytest.fail(f"PAM sshd did not start: {(wd.root / 'sshd.log').read_text()}")
        known_hosts = wd.root / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {pub}\n")
        yield Extra("127.0.0.1", port, known_hosts)
    finally:
        if proc is not None:
            _stop_tree(proc)
        shutil.rmtree(wd.keys_dir, ignore_errors=True)


# --- listing and server info -----------------------------------------------------------------------


async def test_list_configs_and_server_info(instance: Instance, sshd: SshServer, tmp_path: Path) -> None:
    info_dir = instance.home / "info"
    info_dir.mkdir()
    (info_dir / "bash.md").write_text("# bash box\nUse `sudo -n`; logs in /var/log/app.\n")
    absolute = tmp_path / "notes.md"
    absolute.write_text("absolute notes\n")
    conns = dict(instance.connections)
    conns["bash"] = {**conns["bash"], "info_file": "bash.md"}
    conns["zsh"] = {**conns["zsh"], "info_file": str(absolute), "description": "zsh box"}
    conns["dash"] = {**conns["dash"], "info_file": "missing.md"}
    conns["pw"] = sshd.password_connection()
    instance.write_config(conns)

    code, body = instance.curl("/v1/configs")
    assert code == 200, body
    listing = ConfigList.model_validate(body)
    assert sshd.password not in str(body)
    by_name = {e.name: e for e in listing.configs}
    assert {"bash", "zsh", "dash", "ash", "pw"} <= set(by_name)
    bash = by_name["bash"]
    assert (bash.source, bash.host, bash.port, bash.user) == ("config", sshd.host, sshd.port, "skbash")
    assert (bash.description, bash.has_info) == ("test host, bash login shell", True)
    assert (by_name["ash"].has_info, by_name["pw"].user) == (False, sshd.password_user)
    assert listing.errors == [] and listing.file_error is None
    assert listing.config_file == str(instance.home / "config.yml")

    code, body = instance.curl("/v1/configs/bash/info")
    assert code == 200, body
    info = ServerInfo.model_validate(body)
    assert info.content == "# bash box\nUse `sudo -n`; logs in /var/log/app.\n"
    assert info.info_file == str(info_dir / "bash.md")

    async with Client(instance.mcp_params()) as c:
        res = await c.call_tool("list_available_configs", {})
        assert not res.is_error, text_of(res)
        assert res.structured_content is not None
        assert {e["name"] for e in res.structured_content["configs"]} >= {"bash", "pw"}
        assert "zsh box" in text_of(res) and sshd.password not in text_of(res)

        res = await c.call_tool("get_server_info", {"config_name": "zsh"})
        assert not res.is_error, text_of(res)
        assert res.structured_content is not None
        assert res.structured_content["content"] == "absolute notes\n"
        assert "absolute notes" in text_of(res)

        res = await c.call_tool("get_server_info", {"config_name": "dash"})
        assert res.is_error
        assert f"info file of 'dash' not found: {info_dir / 'missing.md'}" in text_of(res)

        res = await c.call_tool("get_server_info", {"config_name": "ash"})
        assert res.is_error and "no info_file" in text_of(res)

        res = await c.call_tool("get_server_info", {"config_name": "nope"})
        assert res.is_error and "connection_not_found" in text_of(res)

    async with instance.client() as client:
        with pytest.raises(NotFound, match="no info_file"):
            await client.request("GET", "/v1/configs/ash/info", ServerInfo)


async def test_broken_entry_names_entry_and_field(instance: Instance) -> None:
    conns = dict(instance.connections)
    conns["broken"] = {**conns["bash"], "port": "twenty-two"}
    conns["nohost"] = {"user": "x"}
    instance.write_config(conns)

    code, body = instance.curl("/v1/configs")
    assert code == 200
    errors = {e["name"]: e["message"] for e in body["errors"]}
    assert errors == {
        "broken": "connections.broken.port: not an integer",
        "nohost": "connections.nohost.host: required",
    }
    assert "broken" not in {e["name"] for e in body["configs"]}

    code, body = instance.curl("/v1/sessions", "POST", {"host": "broken"})
    assert code == 422, body
    assert body["error"]["code"] == "config_error"
    assert body["error"]["message"] == "connections.broken.port: not an integer"
    assert "config.yml" in body["error"]["hint"]

    async with Client(instance.mcp_params()) as c:
        res = await c.call_tool("open_session", {"host": "broken"})
        assert res.is_error
        assert "connections.broken.port: not an integer" in text_of(res)
        res = await c.call_tool("list_available_configs", {})
        assert "BROKEN: connections.nohost.host: required" in text_of(res)
        # The other entries keep working.
        res = await c.call_tool("open_session", {"host": "bash"})
        assert not res.is_error and res.structured_content is not None, text_of(res)
        assert res.structured_content["state"] == "ready"
    assert all(not name.startswith("broken") for name in tmux_sessions(instance))


async def test_password_in_readable_config_is_refused_with_the_chmod(
    instance: Instance, sshd: SshServer
) -> None:
    path = instance.write_config({**instance.connections, "pw": sshd.password_connection()}, mode=0o644)
    code, body = instance.curl("/v1/configs")
    assert code == 200
    expected = f"{path} holds a password and is readable by others; run: chmod 600 {path}"
    assert body["file_error"] == expected
    code, body = instance.curl("/v1/sessions", "POST", {"host": "pw"})
    assert (code, body["error"]["code"], body["error"]["message"]) == (422, "config_error", expected)
    path.chmod(0o600)  # the fix the message names; the daemon sees it without a restart
    async with instance.client() as c:
        info = await c.open_session(OpenSessionRequest(host="pw"))
        assert info.state == "ready", info


async def test_config_reload_keeps_running_sessions(instance: Instance, sshd: SshServer) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        r = await c.send_command(sid, SendCommandRequest(command="export KEPT=yes"))
        assert r.status == "completed"
        conns = dict(instance.connections)
        conns["bash"] = {**conns["bash"], "description": "changed"}
        conns["later"] = dict(conns["zsh"])
        del conns["dash"]
        instance.write_config(conns)
        listing = await c.request("GET", "/v1/configs", ConfigList)
        names = {e.name: e for e in listing.configs if e.source == "config"}
        assert set(names) == {"bash", "zsh", "ash", "later"}
        assert names["bash"].description == "changed"
        r = await c.send_command(sid, SendCommandRequest(command='echo "$KEPT"'))
        assert (r.status, r.output) == ("completed", "yes")
        later = await c.open_session(OpenSessionRequest(host="later"))
        assert (later.state, later.shell) == ("ready", "zsh")


# --- secrets ---------------------------------------------------------------------------------------


async def test_password_login_never_leaks_the_password(instance: Instance, sshd: SshServer) -> None:
    instance.write_config({**instance.connections, "pw": sshd.password_connection()})
    secret = sshd.password.encode()
    with ProcWatcher(secret) as watcher:
        async with instance.client() as c:
            info = await c.open_session(OpenSessionRequest(host="pw"))
            assert info.state == "ready", info
            sid = info.session_id
    assert watcher.hits == [], f"the password showed up in {watcher.hits}"
    assert watcher.ssh_seen, "the watcher never saw the session's ssh: it did not scan during the login"
    async with instance.client() as c:
        r = await c.send_command(sid, SendCommandRequest(command="whoami"))
        assert (r.status, r.output) == ("completed", sshd.password_user)
        snap = await c.get_snapshot(sid, SnapshotQuery(lines=1000))
        assert sshd.password not in snap.screen
        assert "password:" not in snap.screen.lower()  # nobody was asked on the screen
    assert f"Accepted password for {sshd.password_user}" in sshd.log()
    skip = {instance.home / "config.yml"}
    leaks = files_containing(instance.home, secret, skip)
    if not instance.paths.runtime_dir.is_relative_to(instance.home):
        leaks += files_containing(instance.paths.runtime_dir, secret, skip)
    assert leaks == [], f"the password is in {leaks}"
    assert (instance.paths.runtime_dir / "askpass").stat().st_mode & 0o777 == 0o700


async def test_wrong_password_fails_once_with_sshs_message(instance: Instance, sshd: SshServer) -> None:
    wrong = {**sshd.password_connection(), "password": "not-" + secrets.token_hex(8)}
    instance.write_config({**instance.connections, "wrongpw": wrong})
    failures_before = sshd.log().count(f"Failed password for {sshd.password_user} ")
    async with instance.client() as c:
        with pytest.raises(ConnectFailed) as exc_info:
            await c.open_session(OpenSessionRequest(host="wrongpw"))
        assert f"{sshd.password_user}@{sshd.host}: Permission denied (" in exc_info.value.message
        assert (await c.list_sessions()).sessions == []
    # One attempt: no retry loop, no empty passwords sent after the wrong one.
    assert sshd.log().count(f"Failed password for {sshd.password_user} ") - failures_before == 1
    assert tmux_sessions(instance) == []
    assert list(instance.paths.logs_dir.iterdir()) == []


async def test_key_passphrase_login(instance: Instance, sshd: SshServer, tmp_path: Path) -> None:
    passphrase = secrets.token_urlsafe(18)
    key = encrypted_copy(sshd.client_key, tmp_path / "encrypted_key", passphrase)
    entry = {**sshd.connection("bash"), "key_path": str(key), "key_passphrase": passphrase}
    bad = {**entry, "key_passphrase": "not-it"}
    instance.write_config({**instance.connections, "pp": entry, "badpp": bad})
    with ProcWatcher(passphrase.encode()) as watcher:
        async with instance.client() as c:
            info = await c.open_session(OpenSessionRequest(host="pp"))
            assert info.state == "ready", info
    assert watcher.hits == []
    async with instance.client() as c:
        r = await c.send_command(info.session_id, SendCommandRequest(command="whoami"))
        assert (r.status, r.output) == ("completed", "skbash")
        assert passphrase not in (await c.get_snapshot(info.session_id, SnapshotQuery(lines=1000))).screen
        with pytest.raises(ConnectFailed, match=r"skbash@127\.0\.0\.1: Permission denied \(publickey"):
            await c.open_session(OpenSessionRequest(host="badpp"))
    assert files_containing(instance.home, passphrase.encode(), {instance.home / "config.yml"}) == []
    assert tmux_sessions(instance) == [info.session_id]


# --- host keys -------------------------------------------------------------------------------------


@pytest.mark.parametrize("login", ["key", "password"])
async def test_unknown_host_key_is_a_question(
    instance: Instance, sshd: SshServer, tmp_path: Path, login: str
) -> None:
    """ssh asks on the terminal (key login), or our askpass helper does (password login, where
    SSH_ASKPASS_REQUIRE=force sends every question to it): the same question either way."""
    known_hosts = tmp_path / "known_hosts"
    known_hosts.touch()
    entry = sshd.connection("bash") if login == "key" else sshd.password_connection()
    entry["ssh_options"] = {
        **entry["ssh_options"],  # type: ignore[dict-item]
        "UserKnownHostsFile": str(known_hosts),
        "StrictHostKeyChecking": "ask",
    }
    instance.write_config({**instance.connections, "fresh": entry})
    async with instance.client() as c:
        info = await c.open_session(OpenSessionRequest(host="fresh"))
        assert info.state == "waiting_input", info
        assert info.question is not None and info.question.kind == "host_key"
        assert sshd.host_key_fingerprint in info.question.text
        assert "(yes/no/[fingerprint])?" in info.question.text
        assert info.hint is not None and 'send_keys(["yes", "Enter"])' in info.hint
        assert "accept-new" in info.hint
        await c.send_keys(info.session_id, SendKeysRequest(keys=["yes", "Enter"]))
        r = await c.send_command(info.session_id, SendCommandRequest(command="whoami", timeout=30))
        assert (r.status, r.output) == ("completed", entry["user"])
    host_key_blob = sshd.known_hosts.read_text().split()[2]
    assert host_key_blob in known_hosts.read_text()  # accepted and remembered (hashed names here)


async def test_changed_host_key_is_refused(instance: Instance, sshd: SshServer, tmp_path: Path) -> None:
    impostor = keygen(tmp_path / "other_host_key").split()
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(f"[{sshd.host}]:{sshd.port} {impostor[0]} {impostor[1]}\n")
    for name, entry in (("changed", sshd.connection("bash")), ("changedpw", sshd.password_connection())):
        entry["ssh_options"] = {
            **entry["ssh_options"],  # type: ignore[dict-item]
            "UserKnownHostsFile": str(known_hosts),
            "StrictHostKeyChecking": "ask",
        }
        instance.write_config({**instance.connections, name: entry})
        async with instance.client() as c:
            with pytest.raises(ConnectFailed) as exc_info:
                await c.open_session(OpenSessionRequest(host=name))
        message = exc_info.value.message
        assert "has changed and you have requested strict checking" in message
        assert "Host key verification failed." in message
        assert "ssh-keygen -R" in exc_info.value.hint
    assert tmux_sessions(instance) == []
    assert known_hosts.read_text().split()[2] == impostor[1]  # never replaced


# --- jump hosts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bastion_login", ["key", "password"])
async def test_proxy_jump_through_a_bastion(
    instance: Instance, sshd: SshServer, jump_pair: JumpPair, bastion_login: str
) -> None:
    b, t = jump_pair.bastion, jump_pair.target
    if bastion_login == "key":
        bastion = {
            "host": b.host,
            "port": b.port,
            "user": "skbash",
            "key_path": str(sshd.client_key),
            "ssh_options": key_options(b.known_hosts),
        }
    else:
        options = {
            **key_options(b.known_hosts),
            "PasswordAuthentication": "yes",
            "PubkeyAuthentication": "no",
        }
        bastion = {
            "host": b.host,
            "port": b.port,
            "user": sshd.password_user,
            "password": sshd.password,
            "ssh_options": options,
        }
    inner = {
        "host": t.host,
        "port": t.port,
        "user": "skdash",
        "key_path": str(sshd.client_key),
        "ssh_options": key_options(t.known_hosts),
    }
    instance.write_config(
        {"bastion": bastion, "inner": {**inner, "proxy_jump": "bastion"}, "inner-direct": inner}
    )
    async with instance.client() as c:
        with pytest.raises(ConnectFailed, match="port 2222: Connection refused"):
            await c.open_session(OpenSessionRequest(host="inner-direct"))
        info = await c.open_session(OpenSessionRequest(host="inner"))
        assert (info.state, info.shell) == ("ready", "dash"), info
        r = await c.send_command(
            info.session_id, SendCommandRequest(command="whoami; readlink /proc/self/ns/net")
        )
        assert (r.status, r.output) == ("completed", f"skdash\n{jump_pair.target_netns}")
        listing = await c.request("GET", "/v1/configs", ConfigList)
        assert {e.name: e.proxy_jump for e in listing.configs}["inner"] == "bastion"
    assert sshd.password not in "".join(
        p.read_text(errors="replace") for p in instance.paths.logs_dir.iterdir()
    )


# --- connect failures ------------------------------------------------------------------------------


async def test_connect_failures_quote_ssh_and_leave_nothing(
    instance: Instance, sshd: SshServer, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    silent = socket.socket()  # accepts TCP connections (backlog) but never says a word
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    keygen(tmp_path / "stranger")
    base = sshd.connection("bash")
    # name -> (entry, what ssh says, what the hint tells to check)
    entries = {
        "refused": ({**base, "port": closed_port}, f"port {closed_port}: Connection refused", "`port`"),
        "nodns": (
            {**base, "host": "no-such-host.invalid"},
            "Could not resolve hostname no-such-host.invalid",
            "DNS",
        ),
        "silent": (
            {**base, "port": silent.getsockname()[1]},
            "Connection timed out during banner exchange",
            "network path",
        ),
        "badkey": (
            {**base, "key_path": str(tmp_path / "stranger")},
            f"skbash@{sshd.host}: Permission denied (publickey",
            "key_path",
        ),
    }
    instance.write_config({name: entry for name, (entry, _, _) in entries.items()})
    try:
        async with instance.client() as c:
            for name, (_, expected, hint) in entries.items():
                with pytest.raises(ConnectFailed) as exc_info:
                    await c.open_session(OpenSessionRequest(host=name, timeout=50))
                assert expected in exc_info.value.message, (name, exc_info.value.message)
                assert hint in exc_info.value.hint, (name, exc_info.value.hint)
                assert exc_info.value.message.startswith(f"ssh to {name} failed"), exc_info.value.message
                assert (await c.list_sessions()).sessions == []
                assert tmux_sessions(instance) == []
    finally:
        silent.close()
    assert list(instance.paths.logs_dir.iterdir()) == []


# --- keyboard-interactive --------------------------------------------------------------------------


async def test_keyboard_interactive_prompt(instance: Instance, sshd: SshServer, pam_sshd: Extra) -> None:
    """PAM's keyboard-interactive prompt: a question without a configured password, answered by
    the daemon with one. (No second factor is installed here, so the prompt is PAM's `Password:`.)"""
    options = {
        "UserKnownHostsFile": str(pam_sshd.known_hosts),
        "GlobalKnownHostsFile": "/dev/null",
        "StrictHostKeyChecking": "yes",
        "PubkeyAuthentication": "no",
        "PreferredAuthentications": "keyboard-interactive",
    }
    entry = {"host": pam_sshd.host, "port": pam_sshd.port, "user": sshd.password_user, "ssh_options": options}
    instance.write_config({"kbd": entry, "kbdpw": {**entry, "password": sshd.password}})
    async with instance.client() as c:
        info = await c.open_session(OpenSessionRequest(host="kbd"))
        assert info.state == "waiting_input", info
        assert info.question is not None
        assert (info.question.kind, info.question.text) == (
            "password",
            f"({sshd.password_user}@{pam_sshd.host}) Password:",
        )
        await c.send_keys(info.session_id, SendKeysRequest(keys=[sshd.password, "Enter"]))
        r = await c.send_command(info.session_id, SendCommandRequest(command="whoami", timeout=30))
        assert (r.status, r.output) == ("completed", sshd.password_user)

        info = await c.open_session(OpenSessionRequest(host="kbdpw"))
        assert info.state == "ready", info
        r = await c.send_command(info.session_id, SendCommandRequest(command="whoami"))
        assert (r.status, r.output) == ("completed", sshd.password_user)
        assert sshd.password not in (await c.get_snapshot(info.session_id, SnapshotQuery(lines=1000))).screen


# --- reconnect -------------------------------------------------------------------------------------


async def test_reconnect_after_ssh_died(instance: Instance, sshd: SshServer) -> None:
    instance.write_config({**instance.connections, "pw": sshd.password_connection()})
    async with instance.client() as c:
        for host in ("bash", "pw"):
            info = await c.open_session(OpenSessionRequest(host=host))
            sid = info.session_id
            r = await c.send_command(sid, SendCommandRequest(command="echo before-$((6*7))"))
            assert r.output == "before-42"
            old_pid = instance.kill_ssh(sid, signal.SIGTERM)
            await wait_state(c, sid, "disconnected")
            with pytest.raises(SessionDisconnected):
                await c.send_command(sid, SendCommandRequest(command="echo lost"))

            again = await c.reconnect_session(sid, ReconnectRequest())
            assert (again.session_id, again.state) == (sid, "ready"), again
            r = await c.send_command(sid, SendCommandRequest(command="echo after-$((6*7))"))
            assert (r.status, r.output) == ("completed", "after-42")
            new_pid = instance.pane_pid(sid)
            assert new_pid != old_pid
            log = (instance.paths.logs_dir / f"{sid}.log").read_bytes()
            assert log.index(b"before-42") < log.index(b"after-42")  # one log, continued
            assert tmux_sessions(instance).count(sid) == 1
        with pytest.raises(BadRequest, match="still connected"):
            await c.reconnect_session(sid, ReconnectRequest())


async def test_reconnect_through_mcp(instance: Instance) -> None:
    async with Client(instance.mcp_params()) as c:
        res = await c.call_tool("open_session", {"host": "zsh"})
        assert res.structured_content is not None, text_of(res)
        sid = res.structured_content["session_id"]
        await c.call_tool("send_command", {"session_id": sid, "command": "exit"})

        async def disconnected() -> bool:
            listing = await c.call_tool("list_sessions", {})
            assert listing.structured_content is not None
            return any(
                s["session_id"] == sid and s["state"] == "disconnected"
                for s in listing.structured_content["sessions"]
            )

        await eventually(disconnected, "the session to show as disconnected after `exit`")
        res = await c.call_tool("reconnect_session", {"session_id": sid})
        assert not res.is_error, text_of(res)
        assert res.structured_content is not None
        assert (res.structured_content["session_id"], res.structured_content["state"]) == (sid, "ready")
        res = await c.call_tool("send_command", {"session_id": sid, "command": "echo back"})
        assert res.structured_content is not None
        assert (res.structured_content["status"], res.structured_content["output"]) == ("completed", "back")
