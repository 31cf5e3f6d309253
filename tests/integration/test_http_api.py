"""The HTTP API with the real curl on the Unix socket: health, sessions, commands, JSON errors."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.instance import Instance, instance_of
from tests.sshd import SshServer
from tests.support import SHELLS, default_connections


def curl_open_session(inst: Instance, host: str) -> str:
    """Open a session with a POST through curl; it must come up ready."""
    code, body = inst.curl("/v1/sessions", "POST", {"host": host})
    assert code == 201, body
    assert body["state"] == "ready", body
    return str(body["session_id"])


def run(inst: Instance, sid: str, command: str, timeout: float = 20) -> tuple[str, int | None, str]:
    code, body = inst.curl(f"/v1/sessions/{sid}/commands", "POST", {"command": command, "timeout": timeout})
    assert code == 200, body
    return body["status"], body["exit_code"], body["output"]


def assert_error(code: int, body: Any, status: int, error_code: str, *names: str) -> None:
    assert code == status, body
    err = body["error"]
    assert err["code"] == error_code, err
    assert err["message"] and err["hint"], err
    for name in names:
        assert name in err["message"], err


def test_health_and_sessions_answer_json(instance: Instance) -> None:
    code, health = instance.curl("/v1/health")
    assert code == 200
    assert health["status"] == "ok"
    assert health["socket"] == str(instance.socket)
    assert health["sessions"] == 0
    assert health["pid"] == instance.daemon_pid() and health["pid"] > 0
    assert health["attach"].startswith("tmux ") and str(instance.paths.runtime_dir) in health["attach"]
    assert instance.curl("/v1/sessions") == (200, {"sessions": []})


def test_open_get_close(instance: Instance) -> None:
    sid = curl_open_session(instance, "bash")
    code, listing = instance.curl("/v1/sessions")
    assert code == 200
    assert [s["session_id"] for s in listing["sessions"]] == [sid]
    code, info = instance.curl(f"/v1/sessions/{sid}")
    assert code == 200
    assert info["session_id"] == sid and info["connection"] == "bash" and info["shell"] == "bash"
    assert info["integrated"] is True and info["state"] == "ready"
    assert info["attach"].endswith(f"attach -t {sid}")
    assert instance.tmux("has-session", "-t", f"={sid}").returncode == 0
    assert instance.curl("/v1/health")[1]["sessions"] == 1
    # The session's raw output log is private.
    log = instance.paths.logs_dir / f"{sid}.log"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600

    code, res = instance.curl(f"/v1/sessions/{sid}/commands", "POST", {"command": "echo via-curl"})
    assert code == 200
    assert (res["status"], res["exit_code"], res["output"]) == ("completed", 0, "via-curl")
    cid = res["command_id"]
    code, again = instance.curl(f"/v1/sessions/{sid}/commands/{cid}")
    assert code == 200
    assert (again["command_id"], again["status"], again["output"]) == (cid, "completed", "via-curl")
    code, last = instance.curl(f"/v1/sessions/{sid}/commands/last")
    assert code == 200 and last["command_id"] == cid

    code, screen = instance.curl(f"/v1/sessions/{sid}/screen")
    assert code == 200 and "via-curl" in screen["screen"]

    assert instance.curl(f"/v1/sessions/{sid}", "DELETE") == (200, {"session_id": sid, "closed": True})
    assert instance.curl("/v1/sessions") == (200, {"sessions": []})
    assert instance.tmux("has-session", "-t", f"={sid}").returncode != 0
    code, body = instance.curl(f"/v1/sessions/{sid}")
    assert_error(code, body, 404, "session_not_found", sid)
    code, body = instance.curl(f"/v1/sessions/{sid}", "DELETE")
    assert_error(code, body, 404, "session_not_found", sid)


def test_errors_are_json_and_the_daemon_survives(shared: Instance) -> None:
    pid = shared.daemon_pid()
    ghost = "ghost-000000"
    for method, path, body in [
        ("GET", f"/v1/sessions/{ghost}", None),
        ("DELETE", f"/v1/sessions/{ghost}", None),
        ("POST", f"/v1/sessions/{ghost}/commands", {"command": "echo x"}),
        ("GET", f"/v1/sessions/{ghost}/commands/c1", None),
        ("POST", f"/v1/sessions/{ghost}/keys", {"keys": ["Enter"]}),
        ("POST", f"/v1/sessions/{ghost}/interrupt", None),
        ("GET", f"/v1/sessions/{ghost}/screen", None),
        ("POST", f"/v1/sessions/{ghost}/wait", {"pattern": "x"}),
    ]:
        code, reply = shared.curl(path, method, body)
        assert_error(code, reply, 404, "session_not_found", ghost)
        assert "list_sessions" in reply["error"]["hint"]

    code, reply = shared.curl("/v1/nothing-here")
    assert_error(code, reply, 404, "not_found", "/v1/nothing-here")
    code, reply = shared.curl("/v1/sessions/Not_Valid!")
    assert_error(code, reply, 400, "bad_request", "Not_Valid!")

    sid = curl_open_session(shared, "bash")
    cases: list[tuple[object, str]] = [
        (b"{not json", "JSON"),
        (b"[1, 2]", "object"),
        ({"command": "echo x", "bogus": 1}, "bogus"),
        ({}, "command"),
        ({"command": ""}, "command"),
        ({"command": "echo x", "timeout": 500}, "timeout"),
        ({"command": "echo x", "timeout": "soon"}, "timeout"),
    ]
    for payload, named in cases:
        code, reply = shared.curl(f"/v1/sessions/{sid}/commands", "POST", payload)
        assert_error(code, reply, 400, "bad_request", named)
    code, reply = shared.curl(f"/v1/sessions/{sid}/keys", "POST", {"keys": []})
    assert_error(code, reply, 400, "bad_request", "keys")
    code, reply = shared.curl("/v1/sessions", "POST", {"host": "-oProxyCommand=x"})
    assert_error(code, reply, 400, "bad_request", "-oProxyCommand=x")
    code, reply = shared.curl(f"/v1/sessions/{sid}/commands/c999")
    assert_error(code, reply, 404, "command_not_found", "c999")
    code, reply = shared.curl(f"/v1/sessions/{sid}/commands/c1?limit=0")
    assert_error(code, reply, 400, "bad_request", "limit")

    # Still the same daemon, and the session still works.
    assert shared.daemon_pid() == pid
    assert run(shared, sid, "echo still-here") == ("completed", 0, "still-here")
    shared.curl(f"/v1/sessions/{sid}", "DELETE")


LONG = "".join(f"{i:05d}" for i in range(1000))  # 5000 characters, no spaces


@pytest.mark.parametrize("shell", SHELLS)
def test_shell_matrix(shared: Instance, shell: str) -> None:
    sid = curl_open_session(shared, shell)
    assert run(shared, sid, "echo X") == ("completed", 0, "X")
    assert run(shared, sid, "false") == ("completed", 1, "")
    assert run(shared, sid, "(exit 7)") == ("completed", 7, "")
    assert run(shared, sid, "printf no-newline") == ("completed", 0, "no-newline")
    assert run(shared, sid, "echo one\necho two\n(exit 4)") == ("completed", 4, "one\ntwo")
    assert run(shared, sid, "printf '%s|' \"a'b\" 'c\"d' '$HOME' '\\' ';'; echo") == (
        "completed",
        0,
        "a'b|c\"d|$HOME|\\|;|",
    )
    # UTF-8 output is decoded, whatever the remote locale.
    assert run(shared, sid, r"printf 'h\303\251llo \342\234\223\n'") == ("completed", 0, "héllo ✓")
    # Typed non-ASCII input, though this sshd accepts no LANG from the client (POSIX locale): zsh's
    # line editor would mangle it there, so the setup switches zsh to C.UTF-8.
    assert run(shared, sid, "echo 'héllo ✓'") == ("completed", 0, "héllo ✓")
    # Long input (>= 4 KB) goes through a paste buffer, one line or many.
    assert run(shared, sid, f"echo {LONG}") == ("completed", 0, LONG)
    script = "\n".join(f"echo line-{i:03d}-{'x' * 40}" for i in range(120))
    assert len(script) > 4096
    status, exit_code, output = run(shared, sid, script)
    assert (status, exit_code) == ("completed", 0)
    assert output.splitlines() == [f"line-{i:03d}-{'x' * 40}" for i in range(120)]
    # The session is still in step afterwards.
    assert run(shared, sid, "echo after") == ("completed", 0, "after")
    shared.curl(f"/v1/sessions/{sid}", "DELETE")


def test_long_sshkeep_home_works_end_to_end(sshd: SshServer, tmp_path: Path) -> None:
    home = tmp_path / ("h" * 60) / ("long-sshkeep-home-" * 3)
    home.mkdir(parents=True)
    assert len(str(home)) > 100
    with instance_of(default_connections(sshd), home=home) as inst:
        sock = inst.socket
        assert len(str(sock)) < 104
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700
        code, health = inst.curl("/v1/health")
        assert code == 200 and health["socket"] == str(sock)
        sid = curl_open_session(inst, "bash")
        assert run(inst, sid, "echo long-home") == ("completed", 0, "long-home")
        # The state (logs, database) still lives under the long home.
        assert (home / "state").is_dir() and any((home / "state").rglob(f"{sid}.log"))
        assert inst.curl(f"/v1/sessions/{sid}", "DELETE")[0] == 200
