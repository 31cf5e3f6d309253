"""The session side of the side channel (daemon/sidechannel.py): side ssh argv, no-master errors, tty mode."""

from __future__ import annotations

import os
import tty

from sshkeep.daemon.files.sidechannel import side_argv, split_ssh_argv, tty_is_raw

# --- side ssh argv -----------------------------------------------------------------------------------

SESSION_ARGV = [
    "ssh",
    "-o", "ControlMaster=yes",
    "-o", "ControlPath=/run/sk/cm/web-abc123",
    "-o", "ControlPersist=no",
    "-o", "ServerAliveInterval=15",
    "-o", "PermitLocalCommand=yes",
    "-o", "LocalCommand=printf '\\033]133;L;sk=1234\\007'",
    "-l", "deploy",
    "-p", "2222",
    "-i", "/home/me/.ssh/id ed25519",
    "-J", "bastion",
    "-o", "LocalForward=8080 localhost:80",
    "-o", "StrictHostKeyChecking=accept-new",
    "--",
    "web.example.com",
]  # fmt: skip


def test_split_session_argv() -> None:
    kept, dest, control = split_ssh_argv(SESSION_ARGV)
    assert dest == "web.example.com"
    assert control == "/run/sk/cm/web-abc123"
    assert kept == [
        "-o", "ServerAliveInterval=15",
        "-l", "deploy",
        "-p", "2222",
        "-i", "/home/me/.ssh/id ed25519",
        "-o", "StrictHostKeyChecking=accept-new",
    ]  # fmt: skip


def test_split_handles_bundles_and_attached_values() -> None:
    kept, dest, control = split_ssh_argv(["ssh", "-4At", "-oControlPath=/x/y", "-luser", "-v", "host"])
    assert (dest, control) == ("host", "/x/y")
    assert kept == ["-4", "-A", "-l", "user"]
    assert split_ssh_argv([]) == ([], None, None)
    assert split_ssh_argv(["ssh", "-S", "/sock", "h"])[2] == "/sock"


def test_side_argv_cannot_log_in_by_itself() -> None:
    argv = side_argv("/run/sk/cm/s1", ["-l", "deploy"], "web", subsystem="sftp")
    assert argv[:3] == ["ssh", "-S", "/run/sk/cm/s1"]
    assert argv[-4:] == ["-s", "--", "web", "sftp"]
    text = " ".join(argv)
    for opt in ("ControlMaster=no", "ProxyCommand=false", "BatchMode=yes", "ClearAllForwardings=yes"):
        assert opt in text
    # Our options come first: for ssh the first value given wins.
    assert argv.index("ProxyCommand=false") < argv.index("deploy")
    cmd = side_argv("/s", [], "web", command="echo 'a b' $HOME")
    assert cmd[-3:] == ["--", "web", "echo 'a b' $HOME"]


def test_tty_raw_mode_is_seen() -> None:
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        assert tty_is_raw(path) is False  # a fresh pty is cooked
        tty.setraw(slave)
        assert tty_is_raw(path) is True
    finally:
        os.close(master)
        os.close(slave)
    assert tty_is_raw("/nonexistent/tty") is None
