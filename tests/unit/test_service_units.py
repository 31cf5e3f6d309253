"""Pure parts of the service and human CLI: sd_notify, unit quoting and parsing, rendering, tables."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import pytest

from sshkeep.common.models.sessions import SessionInfo
from sshkeep.common.paths import resolve_paths
from sshkeep.common.systemd import parse_env_lines, scope_argv, tmux_placement, unit_environment
from sshkeep.daemon.sdnotify import Notifier, socket_address
from sshkeep.shim.cli.human import age, check_session_id, table, transcript
from sshkeep.shim.cli.service import KINDS, UNITS, render, service_env, systemd_word

# --- sd_notify ------------------------------------------------------------------------------------


def test_notify_address_forms() -> None:
    assert socket_address("/run/user/1000/systemd/notify") == "/run/user/1000/systemd/notify"
    assert socket_address("@/org/freedesktop/systemd1/notify/123") == "\0/org/freedesktop/systemd1/notify/123"
    assert socket_address("vsock:2:1234") is None
    assert socket_address("@") is None


@pytest.mark.parametrize("abstract", [True, False])
def test_notifier_sends_one_datagram(tmp_path: Path, abstract: bool) -> None:
    name = f"sshkeep-unit-{uuid.uuid4().hex}"
    address = "@" + name if abstract else str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name if abstract else address)
        notifier = Notifier(socket_address(address))
        assert notifier.ready("serving 2 sessions\non /x")
        got = sock.recv(4096).decode().split("\n")
        assert got == ["READY=1", f"MAINPID={os.getpid()}", "STATUS=serving 2 sessions on /x"]
        assert notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"


def test_notifier_takes_the_variable_out_of_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "@sshkeep-nowhere")
    notifier = Notifier.from_env()
    assert notifier.address == "\0sshkeep-nowhere"
    assert "NOTIFY_SOCKET" not in os.environ  # children never inherit it
    assert notifier.ready() is False  # nobody listens: reported, never raised
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert not Notifier.from_env().enabled and Notifier.from_env().ready() is False


# --- unit files -----------------------------------------------------------------------------------


def test_systemd_word_quoting() -> None:
    assert systemd_word("/usr/bin/sshkeep", exec_line=True) == "/usr/bin/sshkeep"
    assert systemd_word("/a b/sshkeep", exec_line=True) == '"/a b/sshkeep"'
    assert systemd_word("/x%h/$HOME", exec_line=True) == "/x%%h/$$HOME"
    assert systemd_word("/x%h/$HOME") == "/x%%h/$HOME"  # no $ expansion in Environment=
    assert systemd_word('a"b\\c') == '"a\\"b\\\\c"'
    assert systemd_word(";") == '";"'


@pytest.mark.parametrize("home", ["/tmp/plain", "/tmp/with space", "/tmp/per%cent", '/tmp/q"uote\\back'])
def test_environment_round_trip(home: str) -> None:
    env = {"HOME": "/home/u", "PATH": "/usr/bin:/bin", "SSHKEEP_HOME": home}
    text = render("systemd", env, program=["/opt/sk/bin/sshkeep"])["sshkeep.service"]
    assert unit_environment(text) == {"PATH": "/usr/bin:/bin", "SSHKEEP_HOME": home}
    assert resolve_paths({"HOME": "/home/u", **unit_environment(text)}) == resolve_paths(env)


def test_unit_environment_reads_only_the_service_section() -> None:
    text = '[Unit]\nEnvironment=A=1\n[Service]\nEnvironment=B=2 "C=3 4"\nEnvironment=D=%%x\n'
    assert unit_environment(text) == {"B": "2", "C": "3 4", "D": "%x"}


def test_service_env_is_absolute_and_selective(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    env = {"HOME": "/h", "PATH": "/bin", "SSHKEEP_HOME": "rel", "TERM": "xterm", "XDG_STATE_HOME": "st"}
    assert service_env(env) == {
        "PATH": "/bin",
        "SSHKEEP_HOME": str(tmp_path / "rel"),
        "XDG_STATE_HOME": str(tmp_path / "st"),
    }


@pytest.mark.parametrize("kind", KINDS)
def test_templates_fill_every_placeholder(kind: str) -> None:
    env = {"HOME": "/home/u", "PATH": "/bin", "SSHKEEP_HOME": "/srv/sk"}
    rendered = render(kind, env, program=["/opt/sk/bin/sshkeep"])  # type: ignore[arg-type]
    assert list(rendered) == [u.name for u in UNITS[kind]]  # type: ignore[index]
    for name, text in rendered.items():
        assert "@" not in text.replace("-//Apple", ""), name
        assert "/srv/sk" in text, name
        assert ("/opt/sk/bin/sshkeep" in text) == (not name.endswith(".socket")), name


def test_show_environment_parsing() -> None:
    out = "HOME=/root\nXDG_RUNTIME_DIR=/run/user/0\nWEIRD=$'a\\nb'\nPATH=/usr/bin\n"
    assert parse_env_lines(out) == {"HOME": "/root", "XDG_RUNTIME_DIR": "/run/user/0", "PATH": "/usr/bin"}


async def test_no_systemd_placement_outside_a_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    assert await tmux_placement(["-L", "sshkeep"]) is None


def test_scope_argv() -> None:
    assert scope_argv("user-scope", "d", ["tmux", "new"]) == [
        "systemd-run", "--user", "--scope", "--quiet", "--collect", "--description=d", "tmux", "new",
    ]  # fmt: skip
    assert "--user" not in scope_argv("system-scope", "d", ["tmux"])


# --- human CLI ------------------------------------------------------------------------------------


def test_transcript_hides_plumbing() -> None:
    raw = (
        b"$  [ -n \"$BASH_VERSION\" ] && eval '__sk_n=0; __sk_pc() { x; }'\r\n"
        b"printf \\033]133;X;sk=0123456789abcdef\\007 tail of a wrapped setup line\r\n"
        b"\x1b]133;D;0;sk=0123456789abcdef:1\x07$ __sk_c; echo hi\r\nhi\r\n"
        b"\x1b[32mgreen\x1b[0m\r\nload 50%\rload 100%\r\n$ "
    )
    assert transcript(raw) == "$ echo hi\nhi\ngreen\nload 100%\n$ "


def test_session_ids_are_checked() -> None:
    assert check_session_id("bash-1a2b3c") == "bash-1a2b3c"
    for bad in ("../x", "a/b", "", "A", "x" * 70):
        with pytest.raises(Exception, match="is not a session id"):
            check_session_id(bad)


def test_ls_table() -> None:
    def info(sid: str, created: float, running: str | None = None) -> SessionInfo:
        return SessionInfo(
            session_id=sid, target="web", state="busy" if running else "ready", shell="bash",
            created_at=created, tmux_session=sid, attach="tmux attach", running_command_id=running,
        )  # fmt: skip

    out = table([info("web-2", 1000.0 - 7200, "c3"), info("web-1", 1000.0 - 90000)], now=1000.0)
    assert out.splitlines() == [
        "ID     STATE  TARGET  SHELL  AGE  RUNNING",
        "web-1  ready  web     bash   1d   -",
        "web-2  busy   web     bash   2h   c3",
    ]
    assert [age(s) for s in (0, 59, 60, 3599, 3600, 86400)] == ["0s", "59s", "1m", "59m", "1h", "1d"]
