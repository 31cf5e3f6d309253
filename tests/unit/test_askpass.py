"""The askpass pieces on their own: prompt classification, the broker's decisions (with real
processes for the ancestry check), and the helper script against a stand-in daemon and a real pty."""

from __future__ import annotations

import fcntl
import http.server
import json
import os
import select
import socketserver
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import sshkeep
from sshkeep.common.config import ConfigSource
from sshkeep.common.errors import Forbidden
from sshkeep.common.paths import Paths
from sshkeep.daemon.sessions.askpass import AuthBroker, classify, failure_hint, helper_script

SITE = Path(sshkeep.__file__).resolve().parent.parent  # where the installed package lives
SECRET = "pw-Zq8!x"
PASSPHRASE = "pp-Kd2#y"

# --- classify -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "kind"),
    [
        ("deploy@10.0.0.5's password: ", "password"),
        ("(deploy@10.0.0.5) Password: ", "password"),  # keyboard-interactive through PAM
        ("Password: ", "password"),
        ("Enter passphrase for key '/home/u/.ssh/id_ed25519': ", "passphrase"),
        ("Bad passphrase, try again for /home/u/.ssh/id_ed25519: ", "passphrase"),
        (
            "The authenticity of host 'h (1.2.3.4)' can't be established.\n"
            "ED25519 key fingerprint is SHA256:abc.\n"
            "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
            None,
        ),
        ("Please type 'yes', 'no' or the fingerprint: ", None),
        ("(deploy@h) Verification code: ", None),
        ("One-time password (OATH) for `deploy': ", None),
        ("Duo two-factor login for deploy\n\nPasscode or option (1-2): ", None),
        ("Enter PIN for ECDSA-SK key /home/u/.ssh/id_ecdsa_sk: ", None),
        ("PIN: ", None),
        ("Confirm user presence for key ED25519-SK SHA256:abc", None),
        ("", None),
    ],
)
def test_classify(prompt: str, kind: str | None) -> None:
    assert classify(prompt) == kind


@pytest.mark.parametrize(
    ("ssh_said", "fragment"),
    [
        (
            "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.",
            "ssh-keygen -R",
        ),
        ("Host key verification failed.", "ssh-keygen -R"),
        ("u@h: Permission denied (publickey,password).", "key_path"),
        ("ssh: Could not resolve hostname nope: Name or service not known", "DNS"),
        ("ssh: connect to host h port 22: Connection refused", "`port`"),
        ("ssh: connect to host h port 22: Connection timed out", "network path"),
        ("Connection timed out during banner exchange", "network path"),
        ("something else", None),
    ],
)
def test_failure_hint(ssh_said: str, fragment: str | None) -> None:
    hint = failure_hint(ssh_said)
    assert (hint is None) if fragment is None else (hint is not None and fragment in hint)


# --- the broker -----------------------------------------------------------------------------------


def make_broker(tmp_path: Path, connections: dict[str, Any]) -> AuthBroker:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    config = home / "config.yml"
    config.write_text(yaml.safe_dump({"connections": connections}))
    config.chmod(0o600)
    paths = Paths(home, home, home / "state", home / "run", home / "run" / "daemon.sock")
    (home / "run").mkdir(exist_ok=True)
    return AuthBroker(paths, ConfigSource(config, {}))


def test_no_secret_no_askpass(tmp_path: Path) -> None:
    broker = make_broker(tmp_path, {"web": {"host": "h"}})
    conn = broker.config.current().get("web")
    assert broker.env_for("web-1", conn) == {}
    assert broker.env_for("x-1", None) == {}
    assert not broker.helper.exists()


def test_env_holds_a_token_never_the_secret(tmp_path: Path) -> None:
    broker = make_broker(tmp_path, {"web": {"host": "h", "password": SECRET}})
    env = broker.env_for("web-1", broker.config.current().get("web"))
    assert set(env) == {
        "SSH_ASKPASS",
        "SSH_ASKPASS_REQUIRE",
        "SSHKEEP_ASKPASS_TOKEN",
        "SSHKEEP_ASKPASS_SOCKET",
    }
    assert env["SSH_ASKPASS_REQUIRE"] == "force"
    assert env["SSH_ASKPASS"] == str(broker.helper)
    assert env["SSHKEEP_ASKPASS_SOCKET"] == str(broker.paths.socket)
    assert SECRET not in json.dumps(env)
    assert broker.helper.stat().st_mode & 0o777 == 0o700
    assert SECRET not in broker.helper.read_text()


def test_each_secret_once_per_login(tmp_path: Path) -> None:
    broker = make_broker(tmp_path, {"web": {"host": "h", "password": SECRET, "key_passphrase": PASSPHRASE}})
    conn = broker.config.current().get("web")
    token = broker.env_for("web-1", conn)["SSHKEEP_ASKPASS_TOKEN"]

    def ask(prompt: str) -> tuple[str, str | None]:
        reply = broker.decide(token, prompt, None, None)
        return reply.action, reply.answer

    assert ask("Are you sure you want to continue connecting (yes/no/[fingerprint])? ") == ("terminal", None)
    assert ask("Enter passphrase for key '/k': ") == ("answer", PASSPHRASE)
    assert ask("u@h's password: ") == ("answer", SECRET)
    assert ask("(u@h) Verification code: ") == ("terminal", None)
    # Asked again: the first answer was wrong. Refuse, so ssh fails instead of looping.
    assert ask("u@h's password: ") == ("refuse", None)
    assert ask("Bad passphrase, try again for /k: ") == ("refuse", None)

    # A new login (reconnect) gets a new token; the old one stops working.
    token2 = broker.env_for("web-1", conn)["SSHKEEP_ASKPASS_TOKEN"]
    assert token2 != token
    assert ask("u@h's password: ") == ("terminal", None)
    assert broker.decide(token2, "u@h's password: ", None, None).answer == SECRET
    broker.forget("web-1")
    assert broker.decide(token2, "u@h's password: ", None, None).action == "terminal"


def test_unconfigured_secret_goes_to_the_terminal(tmp_path: Path) -> None:
    broker = make_broker(tmp_path, {"web": {"host": "h", "key_passphrase": PASSPHRASE}})
    token = broker.env_for("web-1", broker.config.current().get("web"))["SSHKEEP_ASKPASS_TOKEN"]
    assert broker.decide(token, "u@h's password: ", None, None).action == "terminal"
    assert broker.decide("x" * 43, "u@h's password: ", None, None).action == "terminal"


@pytest.fixture
def fake_ssh(tmp_path: Path) -> Iterator[tuple[AuthBroker, str, list[int]]]:
    """A broker for session `web-1`, and real processes standing in for its ssh (whose argv holds the
    session's ControlPath), a jump ssh below it, and a helper below each; pids: [ssh, jump, helper,
    jump helper]."""
    broker = make_broker(
        tmp_path,
        {
            "web": {"host": "h", "password": SECRET, "proxy_jump": "bastion"},
            "bastion": {"host": "b", "password": "bastion-secret"},
        },
    )
    token = broker.env_for("web-1", broker.config.current().get("web"))["SSHKEEP_ASKPASS_TOKEN"]
    marker = f"ControlPath={broker.paths.control_dir / 'web-1'}"
    # sh -c SCRIPT NAME ARGS: the marker lands in the stand-in ssh's argv, not in the jump's.
    script = "sleep 60 & sh -c 'sleep 60 & wait' jump & wait"
    proc = subprocess.Popen(["sh", "-c", script, "ssh", marker], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            children = _children(proc.pid)
            subshells = [c for c in children if _children(c)]
            if len(children) == 2 and subshells:
                break
            assert time.monotonic() < deadline, "stand-in processes did not start"
            time.sleep(0.02)
        jump = subshells[0]
        helper = next(c for c in children if c != jump)
        jump_helper = _children(jump)[0]
        yield broker, token, [proc.pid, jump, helper, jump_helper]
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2 :].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def test_only_the_sessions_ssh_gets_the_secret(fake_ssh: tuple[AuthBroker, str, list[int]]) -> None:
    broker, token, (ssh, _jump, helper, jump_helper) = fake_ssh
    prompt = "u@h's password: "
    # Not below the session's ssh (this test process, the ssh itself): refused, never answered.
    for stranger in (os.getpid(), ssh):
        with pytest.raises(Forbidden) as err:
            broker.decide(token, prompt, None, stranger, ssh)
        assert f"process {stranger} is not session web-1's ssh (pid {ssh})" in err.value.message
    # Unknown ssh pid (the pane is gone): nobody can be checked, so nobody is answered.
    with pytest.raises(Forbidden):
        broker.decide(token, prompt, None, helper, None)
    # A jump ssh's helper gets the hop's secret, and only when it says which hop it is.
    with pytest.raises(Forbidden):
        broker.decide(token, prompt, None, jump_helper, ssh)
    with pytest.raises(Forbidden):
        broker.decide(token, prompt, "nope", jump_helper, ssh)
    assert broker.decide(token, prompt, "bastion", jump_helper, ssh).answer == "bastion-secret"
    # The session's own ssh's helper gets the target's secret, whatever hop it claims.
    assert broker.decide(token, prompt, "bastion", helper, ssh).answer == SECRET
    assert broker.decide(token, prompt, None, helper, ssh).action == "refuse"


def test_argv_text_proves_nothing(fake_ssh: tuple[AuthBroker, str, list[int]]) -> None:
    """A process whose parent's argv holds the session's ControlPath word is still a stranger."""
    broker, token, (ssh, *_rest) = fake_ssh
    marker = f"ControlPath={broker.paths.control_dir / 'web-1'}"
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & wait", "ssh", marker], start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while not _children(proc.pid):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(Forbidden):
            broker.decide(token, "u@h's password: ", None, _children(proc.pid)[0], ssh)
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


# --- the helper ---------------------------------------------------------------------------------------


class _Daemon(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    reply: dict[str, Any]
    requests: list[dict[str, Any]]


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Daemon

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"path": self.path, **body})
        data = json.dumps(self.server.reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:
        return "unix"

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[_Daemon]:
    server = _Daemon(str(tmp_path / "d.sock"), _Handler)
    server.reply, server.requests = {"action": "terminal"}, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def helper(tmp_path: Path) -> Path:
    path = tmp_path / "askpass"
    path.write_text(helper_script(sys.executable, SITE))
    path.chmod(0o700)
    return path


def run_helper(
    helper: Path, prompt: str, env: dict[str, str], tty: int | None = None
) -> subprocess.Popen[bytes]:
    """Start the helper as ssh does: prompt in argv[1], answer read from its stdout."""

    def controlling_tty() -> None:
        if tty is not None:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return subprocess.Popen(
        [str(helper), prompt],
        env={"PATH": os.environ["PATH"], **env},
        stdin=tty if tty is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=tty if tty is not None else subprocess.PIPE,
        start_new_session=True,  # no controlling terminal unless `tty` becomes one
        preexec_fn=controlling_tty,
    )


def test_helper_prints_the_daemons_answer(daemon: _Daemon, helper: Path) -> None:
    daemon.reply = {"action": "answer", "answer": SECRET}
    token = "t" * 43
    env = {
        "SSHKEEP_ASKPASS_TOKEN": token,
        "SSHKEEP_ASKPASS_SOCKET": daemon.server_address,
        "SSHKEEP_ASKPASS_HOP": "b",
    }
    proc = run_helper(helper, "u@h's password: ", env)
    out, err = proc.communicate(timeout=30)
    assert (proc.returncode, out, err) == (0, f"{SECRET}\n".encode(), b"")
    assert daemon.requests == [
        {"path": "/v1/askpass", "token": token, "prompt": "u@h's password: ", "hop": "b"}
    ]


def test_helper_fails_when_refused_or_nobody_can_answer(daemon: _Daemon, helper: Path) -> None:
    daemon.reply = {"action": "refuse"}
    env = {"SSHKEEP_ASKPASS_TOKEN": "t" * 43, "SSHKEEP_ASKPASS_SOCKET": daemon.server_address}
    proc = run_helper(helper, "u@h's password: ", env)
    assert proc.communicate(timeout=30)[0] == b"" and proc.returncode == 1
    # "terminal", but there is none; and a daemon that does not answer: the same.
    daemon.reply = {"action": "terminal"}
    for extra in ({}, {"SSHKEEP_ASKPASS_SOCKET": "/nonexistent/sock"}):
        proc = run_helper(helper, "u@h's password: ", {**env, **extra})
        assert proc.communicate(timeout=30)[0] == b"" and proc.returncode == 1


def _read_until(fd: int, needle: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        assert time.monotonic() < deadline, f"no {needle!r} on the terminal; got {seen!r}"
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            seen += os.read(fd, 4096)
    return seen


@pytest.mark.parametrize(
    ("prompt", "typed", "echoed"),
    [
        ("(u@h) Verification code: ", b"123456", False),
        (
            "Host key for h\nAre you sure you want to continue connecting (yes/no/[fingerprint])? ",
            b"yes",
            True,
        ),
    ],
)
def test_helper_asks_on_the_terminal(
    daemon: _Daemon, helper: Path, prompt: str, typed: bytes, echoed: bool
) -> None:
    """What ssh would print goes to the terminal; secrets are typed without echo, yes/no with."""
    master, slave = os.openpty()
    try:
        env = {"SSHKEEP_ASKPASS_TOKEN": "t" * 43, "SSHKEEP_ASKPASS_SOCKET": daemon.server_address}
        proc = run_helper(helper, prompt, env, tty=slave)
        screen = _read_until(master, prompt.splitlines()[-1].rstrip().encode())
        if "\n" in prompt:
            assert b"Host key for h\r\n" in screen
        os.write(master, typed + b"\r")
        out, _ = proc.communicate(timeout=30)
        assert (proc.returncode, out) == (0, typed + b"\n")
        screen = _read_until(master, b"\n")
        assert (typed in screen) is echoed
    finally:
        os.close(master)
        os.close(slave)
