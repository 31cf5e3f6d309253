"""exec_command and the file tools open their channels on the session's ControlMaster itself
(daemon/files/muxclient.py), with no ssh process of their own:
what a command sees and returns is what an `ssh -S` client of the same master gets, command by
command (environment, exit status, both streams, no stdin, no tty, death by a signal), and many
at once each get their own channel."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
from pathlib import Path

from sshkeep.common.client import ApiClient
from sshkeep.common.models.files import ExecRequest, ReadFileRequest
from sshkeep.daemon.files.sidechannel import side_argv
from tests.instance import Instance
from tests.sshd import SshServer
from tests.support import open_session

# What `ssh -S` and the daemon must agree on, one command at a time.
COMMANDS = [
    "env | grep -v '^_=' | sort",
    "exit 7",
    "echo out; echo err >&2; exit 3",
    "printf 'a\\000b\\377\\n'",
    "kill -9 $$",
    "cat; echo cat=$?",
    "tty; echo tty=$?",
    "umask; ulimit -n; pwd; id -un",
    'printf \'%s\\n\' "$0" "$-"',
    "sleep 0.2 & echo started",
]


async def by_ssh(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def by_daemon(c: ApiClient, sid: str, command: str) -> tuple[int, str, str]:
    r = await c.exec_command(sid, ExecRequest(command=command, timeout=20))
    assert r.exit_code is not None and not r.timed_out, r
    return r.exit_code, r.stdout, r.stderr


def daemon_env(instance: Instance) -> dict[str, str]:
    """The daemon's own environment: what an `ssh -S` it started would have inherited."""
    pid = instance.daemon_pid()
    assert pid is not None
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)


async def test_each_command_sees_and_returns_what_ssh_S_gets(instance: Instance, sshd: SshServer) -> None:
    conn = sshd.connection("bash")
    options = {**sshd.ssh_options(), "SetEnv": "LC_SKTEST=from-setenv", "SendEnv": "LC_SKTEST"}
    instance.write_config({**instance.connections, "env": {**conn, "ssh_options": options}})
    async with instance.client() as c:
        sid = await open_session(c, "env")
        sockets = list(instance.paths.control_dir.iterdir())
        assert len(sockets) == 1, sockets
        argv = side_argv(
            str(sockets[0]), [f"-o{k}={v}" for k, v in options.items()] + ["-p", str(conn["port"])],
            f"{conn['user']}@{conn['host']}",
        )  # fmt: skip
        env = daemon_env(instance)
        for command in COMMANDS:
            theirs = await by_ssh([*argv[:-1], command], env)
            ours = await by_daemon(c, sid, command)
            assert ours == theirs, command
        env_out = (await by_daemon(c, sid, "echo $LC_SKTEST"))[1]
        assert env_out == "from-setenv\n"  # SetEnv went through, so the env line above compared it
        assert (await by_daemon(c, sid, "kill -9 $$"))[0] == 255


def side_clients(control: Path) -> list[int]:
    """`ssh -S <control>` processes: multiplexing clients of the master."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # `-S <path>` is how a client names the master (the master's own argv has ControlPath=).
        if argv[0].endswith(b"ssh") and any(
            a == b"-S" and b == str(control).encode() for a, b in itertools.pairwise(argv)
        ):
            found.append(int(entry.name))
    return found


async def test_many_at_once_each_on_a_channel_of_its_own(instance: Instance) -> None:
    shared = Path(tempfile.mkdtemp(prefix="sk-side-", dir="/tmp"))
    try:
        os.chmod(shared, 0o755)
        (shared / "f.txt").write_text("beside")
        os.chmod(shared / "f.txt", 0o644)
        async with instance.client() as c:
            sid = await open_session(c)
            runs = [by_daemon(c, sid, f"echo {i}; echo e{i} >&2; exit {i}") for i in range(30)]
            reads = [
                c.read_remote_file(sid, ReadFileRequest(remote_path=str(shared / "f.txt"))) for _ in range(5)
            ]
            results = await asyncio.gather(*runs, *reads)
            assert results[:30] == [(i, f"{i}\n", f"e{i}\n") for i in range(30)]
            assert [getattr(r, "content", None) for r in results[30:]] == ["beside"] * 5
            # Neither the file channel nor a command started an ssh process of its own.
            assert side_clients(instance.paths.control_dir / sid) == []
            # No descriptor of the channels stays open in the daemon.
            pid = instance.daemon_pid()
            assert pid is not None
            before = len(os.listdir(f"/proc/{pid}/fd"))
            await asyncio.gather(*(by_daemon(c, sid, "true") for _ in range(10)))
            assert len(os.listdir(f"/proc/{pid}/fd")) < before + 10  # three per call would leak 30
    finally:
        shutil.rmtree(shared, ignore_errors=True)
