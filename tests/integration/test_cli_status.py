"""`sshkeep status [--json]`: daemon health, socket, attach command and session count."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

from tests.instance import Instance, run_sshkeep


def status_json(inst: Instance, env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    done = run_sshkeep("status", "--json", env=env or inst.env, timeout=30)
    return done.returncode, json.loads(done.stdout)


def test_status_of_a_running_daemon(instance: Instance) -> None:
    code, report = status_json(instance)
    assert code == 0
    assert report["status"] == "ok"
    assert report["socket"] == str(instance.socket)
    assert report["sessions"] == 0
    assert report["pid"] == instance.daemon_pid()

    code, info = instance.curl("/v1/sessions", "POST", {"host": "dash"})
    assert code == 201, info
    sid = info["session_id"]
    code, report = status_json(instance)
    assert code == 0 and report["sessions"] == 1
    # The attach command selects our private tmux server: the same words reach the session.
    attach = shlex.split(str(report["attach"]))
    assert attach[0] == "tmux" and attach[-1] == "attach"
    probe = subprocess.run([*attach[:-1], "has-session", "-t", f"={sid}"], capture_output=True, timeout=10)
    assert probe.returncode == 0, probe.stderr
    # ... and never the user's default server.
    assert "-L" in attach or "-S" in attach

    text = instance.cli("status")
    assert text.returncode == 0
    assert str(instance.socket) in text.stdout and "sessions: 1" in text.stdout
    assert str(report["attach"]) in text.stdout


def test_console_script_reports_status(instance: Instance) -> None:
    script = Path(sys.executable).with_name("sshkeep")
    assert script.exists(), "the sshkeep console script is installed next to python (pip install -e .)"
    done = subprocess.run(
        [str(script), "status", "--json"], env=instance.env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["socket"] == str(instance.socket)


def test_status_when_no_daemon_runs(idle_instance: Instance) -> None:
    code, report = status_json(idle_instance)
    assert code == 1
    assert report["status"] == "not running"
    assert report["socket"] == str(idle_instance.socket)
    assert report["sessions"] == 0
    assert report["error"] and str(idle_instance.socket) in str(report["error"])
    assert str(report["attach"]).startswith("tmux ")

    text = idle_instance.cli("status")
    assert text.returncode == 1
    assert "not running" in text.stdout and "sshkeep daemon" in text.stdout
    # Asking for status never starts a daemon.
    assert not idle_instance.socket.exists()


def test_status_follows_sshkeep_socket(instance: Instance, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.sock"
    env = {**instance.env, "SSHKEEP_SOCKET": str(other)}
    code, report = status_json(instance, env)
    assert code == 1
    assert report["status"] == "not running" and report["socket"] == str(other)
