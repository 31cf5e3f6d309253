"""The sshd fixture itself: plain OpenSSH clients log in as each test user, by key and by password."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.sshd import SshServer

TIMEOUT = 30


def _ssh(
    server: SshServer, user: str, command: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [
        "ssh",
        "-F",
        "/dev/null",  # no user or system ssh_config
        "-p",
        str(server.port),
        "-o",
        f"UserKnownHostsFile={server.known_hosts}",
        "-o",
        "GlobalKnownHostsFile=/dev/null",
        "-o",
        "StrictHostKeyChecking=yes",
        *extra,
        f"{user}@{server.host}",
        command,
    ]
    return subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        start_new_session=True,  # no controlling tty: ssh cannot prompt on one
        check=False,
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "dash", "ash"])
def test_key_login_runs_the_users_login_shell(sshd: SshServer, shell: str) -> None:
    done = _ssh(
        sshd,
        sshd.users[shell],
        'echo "$0"; cat /proc/$$/comm; echo ok',
        "-i",
        str(sshd.client_key),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
    )
    assert done.returncode == 0, f"{done.stderr}\n--- sshd log ---\n{sshd.log()}"
    argv0, comm, ok = done.stdout.splitlines()
    # sshd runs `<shell> -c command` with argv[0] = the shell's basename.
    assert (argv0, comm, ok) == (shell, shell, "ok")


@pytest.mark.parametrize("shell", ["bash", "zsh", "dash", "ash"])
def test_interactive_login_on_a_pty(sshd: SshServer, shell: str) -> None:
    """What sshkeep does: a pty and an interactive login shell (zsh must not run its new-user wizard)."""
    args = ["ssh", "-F", "/dev/null", "-tt", "-p", str(sshd.port), "-i", str(sshd.client_key)]
    for key, value in sshd.ssh_options().items():
        args += ["-o", f"{key}={value}"]
    done = subprocess.run(
        [*args, f"{sshd.users[shell]}@{sshd.host}"],
        input='echo "L:$0:$(cat /proc/$$/comm):$((6*7))"\nexit\n',
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        start_new_session=True,
        check=False,
    )
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n--- sshd log ---\n{sshd.log()}"
    # The pty echoes the typed line too, but only the shell's output has the expanded values.
    assert f"L:-{shell}:{shell}:42" in done.stdout, done.stdout


def test_connection_entry_options_work_with_plain_ssh(sshd: SshServer) -> None:
    entry = sshd.connection("bash")
    assert entry["user"] == sshd.users["bash"] and entry["port"] == sshd.port
    options = entry["ssh_options"]
    assert isinstance(options, dict)
    extra = ["-i", str(entry["key_path"])]
    for key, value in options.items():
        extra += ["-o", f"{key}={value}"]
    done = _ssh(sshd, str(entry["user"]), "id -un", *extra)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == sshd.users["bash"]
    assert sshd.host_key_fingerprint.startswith("SHA256:")


def _askpass(tmp_path: Path, password: str) -> dict[str, str]:
    secret = tmp_path / "password"
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password)
    script = tmp_path / "askpass.sh"
    script.write_text(f"#!/bin/sh\nexec cat '{secret}'\n")
    script.chmod(0o700)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "SSH_AUTH_SOCK")}
    return env | {"SSH_ASKPASS": str(script), "SSH_ASKPASS_REQUIRE": "force"}


def _password_options(server: SshServer) -> list[str]:
    extra = ["-o", "NumberOfPasswordPrompts=1"]
    for key, value in server.ssh_options(password=True).items():
        extra += ["-o", f"{key}={value}"]
    return extra


def test_password_login_through_askpass(sshd: SshServer, tmp_path: Path) -> None:
    env = _askpass(tmp_path, sshd.password)
    done = _ssh(sshd, sshd.password_user, 'id -un; echo "$0"', *_password_options(sshd), env=env)
    assert done.returncode == 0, f"{done.stderr}\n--- sshd log ---\n{sshd.log()}"
    assert done.stdout.splitlines() == [sshd.password_user, "bash"]
    assert sshd.password not in done.stdout + done.stderr


def test_wrong_password_is_refused(sshd: SshServer, tmp_path: Path) -> None:
    env = _askpass(tmp_path, sshd.password + "x")
    done = _ssh(sshd, sshd.password_user, "echo ok", *_password_options(sshd), env=env)
    assert done.returncode == 255
    assert "ok" not in done.stdout
    assert "Permission denied" in done.stderr


def test_key_only_users_refuse_passwords(sshd: SshServer, tmp_path: Path) -> None:
    env = _askpass(tmp_path, sshd.password)
    done = _ssh(sshd, sshd.users["bash"], "echo ok", *_password_options(sshd), env=env)
    assert done.returncode == 255
    assert "Permission denied" in done.stderr
