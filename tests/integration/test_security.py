"""The socket is private: 0600 in a 0700 dir, and a connection from another uid is refused (403)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from tests.instance import Instance
from tests.sshd import SshServer


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def curl_as(user: str, socket: Path, path: str, method: str = "GET") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", user, "--", "curl", "-sS", "--unix-socket", str(socket), "-X", method,
         "-H", "Content-Type: application/json", "-w", "\n%{http_code}", f"http://localhost{path}"]
        + (["--data-binary", '{"command": "id"}'] if method == "POST" else []),
        capture_output=True, text=True, timeout=60, check=False, cwd="/",
    )  # fmt: skip


@contextmanager
def reachable_by_others(socket: Path, socket_mode: int | None = None) -> Iterator[None]:
    """Let other users traverse to the socket (dirs get o+x only) for the test; restore after."""
    saved: list[tuple[Path, int]] = []
    try:
        for d in socket.parents:
            m = mode(d)
            if not m & stat.S_IXOTH:
                saved.append((d, m))
                d.chmod(m | stat.S_IXOTH | stat.S_IXGRP)  # 0711: enter, never list
        if socket_mode is not None:
            saved.append((socket, mode(socket)))
            socket.chmod(socket_mode)
        yield
    finally:
        for path, m in reversed(saved):
            path.chmod(m)


async def test_socket_state_and_log_modes(instance: Instance) -> None:
    paths = instance.paths
    st = os.stat(paths.socket)
    assert stat.S_ISSOCK(st.st_mode) and mode(paths.socket) == 0o600
    assert st.st_uid == os.getuid()
    for d in (paths.socket.parent, paths.runtime_dir, paths.state_dir, paths.logs_dir):
        assert mode(d) == 0o700, d
        assert os.stat(d).st_uid == os.getuid(), d
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        await c.send_command(sid, SendCommandRequest(command="true"))
    assert mode(paths.audit_log) == 0o600
    assert mode(paths.logs_dir / f"{sid}.log") == 0o600
    assert mode(paths.db_file) == 0o600


def test_other_uid_is_refused(instance: Instance, sshd: SshServer) -> None:
    other = sshd.users["dash"]  # an unprivileged test account
    sock = instance.socket
    before_modes = {p: mode(p) for p in [sock, *sock.parents]}

    # Dirs traversable, socket still 0600: the kernel refuses the connection itself.
    with reachable_by_others(sock):
        done = curl_as(other, sock, "/v1/health")
    assert done.returncode != 0, done.stdout
    assert "200" not in done.stdout
    assert "ermission denied" in done.stderr or "Couldn't connect" in done.stderr, done.stderr

    # Even a socket opened up by mistake (0666): the daemon checks the peer uid and answers 403.
    with reachable_by_others(sock, socket_mode=0o666):
        get = curl_as(other, sock, "/v1/health")
        post = curl_as(other, sock, "/v1/sessions", "POST")
    for done in (get, post):
        assert done.returncode == 0, done.stderr
        text, _, code = done.stdout.rpartition("\n")
        assert code == "403", done.stdout
        err = json.loads(text)["error"]
        assert err["code"] == "forbidden"
        assert f"uid {int(subprocess.check_output(['id', '-u', other]))}" in err["message"]
        assert err["hint"]

    # Modes restored, and the owner is served as before.
    assert {p: mode(p) for p in [sock, *sock.parents]} == before_modes
    code, health = instance.curl("/v1/health")
    assert code == 200 and health["status"] == "ok"
    # The refused attempts are in the audit log, with the peer's uid.
    lines = [json.loads(x) for x in instance.paths.audit_log.read_text().splitlines()]
    refused = [x for x in lines if x["status"] == 403]
    assert len(refused) == 2
    assert all(x["decision"] == "refused" and x["peer"]["uid"] != os.getuid() for x in refused)
    assert {x["method"] for x in refused} == {"GET", "POST"}
