"""Another local user pre-creates sshkeep's guessable runtime dir or plants a socket server:
nothing is ever sent to it, the refusal is clear and audited, and the user's daemon still starts."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import UnsafeRuntimeDir
from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from sshkeep.daemon.files import muxclient
from tests.instance import Instance
from tests.integration.conftest import default_connections
from tests.sshd import SshServer
from tests.support import stop_group

# A fake daemon: answers every request with forged JSON and writes down every byte it received.
FAKE_SERVER = r"""
import os, socket, sys
path, received = sys.argv[1], sys.argv[2]
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
os.chmod(path, 0o777)
srv.listen(16)
print("listening", flush=True)
while True:
    conn, _ = srv.accept()
    conn.settimeout(2)
    try:
        data = conn.recv(65536)
    except OSError:
        data = b""
    with open(received, "ab") as f:
        f.write(data)
    if data:
        body = b'{"status":"ok","pid":1,"version":"forged","uptime_s":1,"sessions":0}'
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(body)).encode() + b"\r\n\r\n" + body)
    conn.close()
"""


def as_user(user: str, *argv: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
        ["runuser", "-u", user, "--", *argv], text=True, stdout=subprocess.PIPE, cwd="/", **kw
    )


@contextmanager
def fake_server(user: str, directory: Path, name: str = "daemon.sock") -> Iterator[tuple[Path, Path]]:
    """`user` makes `directory` (0755, theirs) and serves a fake daemon on `directory/name`."""
    subprocess.run(["runuser", "-u", user, "--", "mkdir", "-m", "0755", str(directory)], check=True)
    received = directory / "received"
    subprocess.run(["runuser", "-u", user, "--", "touch", str(received)], check=True)
    # Its own process group: runuser forks the server, and killing runuser alone leaves it running.
    argv = ["/usr/bin/python3", "-c", FAKE_SERVER, str(directory / name), str(received)]
    proc = as_user(user, *argv, start_new_session=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        yield directory / name, received
    finally:
        stop_group(proc)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def long_home(sshd: SshServer) -> Iterator[Instance]:
    """An instance whose SSHKEEP_HOME is too long for sockets: its runtime dir is the guessable
    /tmp/sshkeep-$UID-<hash>."""
    base = Path(tempfile.mkdtemp(prefix="skt-", dir="/tmp"))
    home = base / ("a-rather-long-directory-name-" * 3)
    home.mkdir()
    inst = Instance(home)
    inst.write_config(default_connections(sshd))
    try:
        yield inst
    finally:
        inst.destroy()
        shutil.rmtree(base, ignore_errors=True)


def audit_lines(inst: Instance) -> list[dict[str, object]]:
    path = inst.paths.audit_log
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


async def test_taken_fallback_dir_is_refused_and_the_daemon_moves(
    long_home: Instance, sshd: SshServer
) -> None:
    attacker = sshd.users["dash"]
    guessable = long_home.paths.runtime_dir
    assert long_home.paths.fallback == guessable and str(guessable).startswith("/tmp/sshkeep-")
    with fake_server(attacker, guessable) as (sock, received):
        # A client refuses before sending anything, naming the path and its owner.
        with pytest.raises(UnsafeRuntimeDir) as err:
            async with ApiClient(sock) as c:
                await c.health()
        assert str(guessable) in err.value.message and attacker in err.value.message
        assert err.value.status == 403 and err.value.hint

        # The CLI (which auto-starts the daemon) still works: the daemon moves to an unpredictable
        # dir, records it in the state dir, and the client follows the record.
        done = long_home.cli("ls", "--json", timeout=60)
        assert done.returncode == 0, done.stderr + long_home.daemon_log()
        assert json.loads(done.stdout) == {"sessions": []}
        moved = long_home.paths
        assert moved.runtime_dir != guessable and moved.runtime_dir.parent == Path("/tmp")
        assert os.stat(moved.runtime_dir).st_uid == os.getuid()
        assert (os.stat(moved.runtime_dir).st_mode & 0o777) == 0o700
        async with ApiClient(moved.socket) as c:
            sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
            res = await c.send_command(sid, SendCommandRequest(command="echo served-by-$((6*7))"))
            assert (res.status, res.output) == ("completed", "served-by-42")
            assert (await c.health()).version != "forged"

        # The attacker's socket never saw a byte; their dir is untouched; the refusal is audited.
        assert received.read_bytes() == b""
        assert os.stat(guessable).st_mode & 0o777 == 0o755
        refusals = [x for x in audit_lines(long_home) if x.get("event") == "runtime_dir_refused"]
        assert len(refusals) == 1 and refusals[0]["path"] == str(guessable)
        assert refusals[0]["using"] == str(moved.runtime_dir) and attacker in str(refusals[0]["problem"])


async def side_command_on(sock: Path) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    try:
        await muxclient.open_session(sock, "id", muxclient.SessionFlags(), (null, null, null))
    finally:
        os.close(null)


async def health_of(sock: Path) -> None:
    async with ApiClient(sock) as c:
        await c.health()


def test_socket_served_by_another_uid_is_refused(sshd: SshServer) -> None:
    """Even a socket file that looks ours, in a dir of ours, is refused when its server runs as
    another uid (SO_PEERCRED of the connected socket)."""
    attacker = sshd.users["dash"]
    mine = Path(tempfile.mkdtemp(prefix="skt-own-", dir="/tmp"))
    try:
        with fake_server(attacker, Path(tempfile.mktemp(prefix="skt-evil-", dir="/tmp"))) as (sock, received):
            planted = mine / "daemon.sock"
            os.rename(sock, planted)  # the listening socket keeps serving under its new name
            os.chown(planted, os.getuid(), os.getgid())
            with pytest.raises(UnsafeRuntimeDir) as err:
                asyncio.run(health_of(planted))
            assert "runs as uid" in err.value.message and attacker in err.value.message

            # The SSH_ASKPASS helper does not hand it the token or the prompt either.
            env = {
                "SSHKEEP_ASKPASS_TOKEN": "t0k3n",
                "SSHKEEP_ASKPASS_SOCKET": str(planted),
                "PATH": os.environ["PATH"],
            }
            helper = subprocess.run(
                [sys.executable, "-m", "sshkeep.shim.askpass", "user@host's password: "],
                env=env, capture_output=True, timeout=30, start_new_session=True,
            )  # fmt: skip
            assert helper.returncode == 1 and helper.stdout == b""  # no tty to ask: it fails, sends nothing

            # Nor does a side command taking it for the session's ssh master: not even the hello.
            with pytest.raises(muxclient.NoMaster, match="runs as"):
                asyncio.run(side_command_on(planted))
            assert received.read_bytes() == b""
    finally:
        shutil.rmtree(mine, ignore_errors=True)


async def test_replayed_askpass_token_gets_nothing(instance: Instance, sshd: SshServer) -> None:
    """A process that is not the session's ssh (nor below it) replays the session's askpass token:
    refused (403), audited, and the password is in no reply."""
    instance.write_config({**instance.connections, "pw": sshd.password_connection()})
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="pw"))).session_id
        assert (await c.send_command(sid, SendCommandRequest(command="echo in"))).output == "in"
    pane_pid = int(instance.tmux("display-message", "-p", "-t", f"={sid}:", "#{pane_pid}").stdout)
    environ = (await asyncio.to_thread(Path(f"/proc/{pane_pid}/environ").read_bytes)).split(b"\0")
    token = next(e.split(b"=", 1)[1].decode() for e in environ if e.startswith(b"SSHKEEP_ASKPASS_TOKEN="))
    prompt = f"{sshd.password_user}@{sshd.host}'s password: "

    code, body = instance.curl("/v1/askpass", "POST", {"token": token, "prompt": prompt})
    assert code == 403 and body["error"]["code"] == "forbidden", body
    assert f"is not session {sid}'s ssh (pid {pane_pid})" in body["error"]["message"]
    # The real helper, run by a stranger with the token, gets nothing either.
    env = {
        "SSHKEEP_ASKPASS_TOKEN": token,
        "SSHKEEP_ASKPASS_SOCKET": str(instance.socket),
        "PATH": "/usr/bin:/bin",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sshkeep.shim.askpass", prompt,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 1 and out == b""

    audit = instance.paths.audit_log.read_text()
    assert sshd.password not in audit and token not in audit
    refused = [x for x in audit_lines(instance) if x.get("tool") == "askpass" and x.get("status") == 403]
    assert len(refused) == 2 and all(x["decision"] == "refused" for x in refused)
