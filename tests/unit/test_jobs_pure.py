"""The pure parts of terminals and jobs: wire models, foreground guards, job names, remote scripts."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from sshkeep.common.models import jobs as mj
from sshkeep.common.terminal.foreground import endless_reason, has_background_ampersand, started_jobs
from sshkeep.daemon.sessions.jobs import Job, follow_command, job_name, launch_script, port_probe
from sshkeep.daemon.sessions.session import terminal_key
from sshkeep.daemon.sessions.terminals import mux_argv


@pytest.mark.parametrize(
    ("model", "valid"),
    [
        (mj.OpenTerminalRequest, {}),
        (mj.StartJobRequest, {"command": "sleep 1"}),
        (mj.ReadySpec, {"port": 8000}),
        (mj.JobsQuery, {}),
        (mj.JobQuery, {}),
        (mj.StopJobRequest, {}),
    ],
)
def test_job_requests_forbid_unknown_fields(model: type[mj.Request], valid: dict[str, object]) -> None:
    model.model_validate(valid)
    with pytest.raises(ValidationError):
        model.model_validate({**valid, "surprise": 1})


def test_ready_needs_exactly_one_of_pattern_and_port() -> None:
    assert mj.ReadySpec(pattern="listening").port is None
    for bad in ({}, {"pattern": "x", "port": 80}):
        with pytest.raises(ValidationError, match="exactly one of pattern or port"):
            mj.ReadySpec.model_validate(bad)
    with pytest.raises(ValidationError):
        mj.ReadySpec(port=70000)


@pytest.mark.parametrize("name", ["main2", "t1", "build_x", "a-b"])
def test_terminal_names(name: str) -> None:
    assert mj.OpenTerminalRequest(name=name).name == name


@pytest.mark.parametrize("name", ["", "Main", "a b", "a:b", "a.b", "x" * 33, "-x"])
def test_bad_terminal_names(name: str) -> None:
    with pytest.raises(ValidationError):
        mj.OpenTerminalRequest(name=name)


def test_terminal_keys() -> None:
    assert terminal_key("web-1a2b3c", "main") == "web-1a2b3c"
    assert terminal_key("web-1a2b3c", "t1") == "web-1a2b3c@t1"


@pytest.mark.parametrize(
    ("command", "endless"),
    [
        ("tail -f /var/log/syslog", True),
        ("tail -F x.log | grep err", True),
        ("journalctl -fu nginx", True),
        ("python3 -m http.server 8000", True),
        ("npm run dev", True),
        ("kubectl logs -f pod/x", True),
        ("ping example.com", True),
        ("tail -n 20 x.log", False),
        ("ping -c 3 example.com", False),
        ("ls -la", False),
        ("make -j4", False),
    ],
)
def test_endless_commands(command: str, endless: bool) -> None:
    assert (endless_reason(command) is not None) == endless


@pytest.mark.parametrize(
    ("command", "background"),
    [
        ("sleep 100 &", True),
        ("sleep 1 & echo hi", True),
        ("a && b", False),
        ("ls 2>&1", False),
        ("ls &> /dev/null", False),
        ("x >& y", False),
        ("echo 'a & b'", False),
        ('echo "a & b"', False),
        ("echo \\&", False),
        ("echo hi # & not this", False),
    ],
)
def test_background_ampersand(command: str, background: bool) -> None:
    assert has_background_ampersand(command) == background


def test_started_jobs_are_read_from_job_control_lines() -> None:
    assert started_jobs(["[1] 4242", "output [2] 5", "[2]   77  "]) == [4242, 77]


@pytest.mark.parametrize(
    ("command", "name"),
    [
        ("npm run dev", "npm"),
        ("FOO=1 /usr/bin/python3 -m http.server", "python3"),
        ("sudo tail -f /var/log/x", "tail"),
        ("", "job"),
    ],
)
def test_job_names(command: str, name: str) -> None:
    assert job_name(command) == name


def test_job_documents_round_trip() -> None:
    job = Job(
        "j-abcdef", "web-1a2b3c", "npm", "npm run dev", True, 1.5, remote_dir="/h/.sshkeep-jobs/j-abcdef"
    )
    assert Job.load(job.dump()) == job
    assert Job.load("{not json") is None


def test_mux_argv_rides_the_master_and_never_logs_in() -> None:
    main = ["ssh", "-o", "ControlMaster=yes", "-o", "ControlPath=/r/cm/s", "-o", "LocalCommand=x",
            "-l", "deploy", "-p", "2222", "--", "web"]  # fmt: skip
    argv = mux_argv(main, "/r/cm/s")
    assert argv[:3] == ["ssh", "-S", "/r/cm/s"]
    assert argv[-2:] == ["--", "web"]
    joined = " ".join(argv)
    for want in ("ControlMaster=no", "ProxyCommand=false", "BatchMode=yes", "RequestTTY=force", "-l deploy"):
        assert want in joined
    assert "ControlMaster=yes" not in joined and "LocalCommand=x" not in joined


def _sh(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=30,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
    )


def test_durable_scripts_run_a_job_detached_and_follow_it(tmp_path: Path) -> None:
    """The remote scripts, run by a local sh: the job's files, its output and its exit status."""
    out = _sh(launch_script("j-000001", "echo one; echo 'two words'; exit 7", None), tmp_path)
    assert out.returncode == 0, out.stderr
    pid, _, remote_dir = out.stdout.strip().partition(" ")
    assert pid.isdigit() and remote_dir == str(tmp_path / ".sshkeep-jobs" / "j-000001")
    assert (tmp_path / ".sshkeep-jobs").stat().st_mode & 0o777 == 0o700
    follow = _sh(follow_command(remote_dir), tmp_path)
    assert (follow.returncode, follow.stdout) == (7, "one\ntwo words\n")
    assert Path(remote_dir, "status").read_text().strip() == "7"


def test_port_probe_says_closed(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        assert _sh(port_probe(port), tmp_path).returncode == 1  # bound but not listening
        s.listen()
        assert _sh(port_probe(port), tmp_path).returncode == 0
