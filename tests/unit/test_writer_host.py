"""The log writers' host (daemon/sessions/logwriter.py): a pane's writer hands its input to the
host, whose child writes the log exactly; without a host it can trust, or with a host of another
version of the writer, the pane's writer writes the log itself. Real processes, real sockets."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshkeep.daemon.sessions.loggaps import WRITER, host_command, pipe_command
from tests.sshd import descendants
from tests.support import wait_until

CHUNKS = [b"echo one\r\n", b"one\r\n\x1b]133;D;0;sk=ab:1\x07", b"x" * 100_000, b"$ "]


@pytest.fixture
def rundir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir(mode=0o700)
    return d


def start_host(sock: Path, writer: Path = WRITER) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(writer), "--host", str(sock)])
    wait_until(lambda: sock.exists() or proc.poll() is not None, "the host's socket")
    return proc


@pytest.fixture
def host(rundir: Path) -> Iterator[tuple[Path, subprocess.Popen[bytes]]]:
    sock = rundir / "lw.sock"
    proc = start_host(sock)
    yield sock, proc
    proc.kill()
    proc.wait()


def pane_writer(log: Path, sock: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The writer as tmux's pipe-pane starts it, with the host's socket: (process, our pipe end)."""
    read_end, write_end = os.pipe()
    gaps = log.with_suffix(".gaps")
    argv = [sys.executable, "-I", "-S", str(WRITER), str(log), str(gaps), str(sock)]
    proc = subprocess.Popen(argv, stdin=read_end)
    os.close(read_end)
    return proc, write_end


def test_the_pipe_command_names_the_host() -> None:
    cmd = pipe_command(Path("/x/s-1.log"), Path("/run/lw.sock"))
    assert cmd.startswith("exec ") and cmd.endswith(" /x/s-1.log /x/s-1.gaps /run/lw.sock")
    assert " --host /run/lw.sock " in host_command(Path("/run/lw.sock"))


def test_a_pane_writer_hands_its_input_to_a_child_of_the_host(
    tmp_path: Path, host: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    sock, proc = host
    log = tmp_path / "s.log"
    writer, pipe = pane_writer(log, sock)
    assert writer.wait(timeout=10) == 0  # handed over: it exits before any output comes
    wait_until(lambda: len(descendants(proc.pid)) == 1, "the host's child for the pane")
    for chunk in CHUNKS:
        os.write(pipe, chunk)
    os.close(pipe)  # the pane's end: its writer exits
    wait_until(lambda: not descendants(proc.pid), "the child to exit at the end of its input")
    assert log.read_bytes() == b"".join(CHUNKS)
    assert log.with_suffix(".gaps").read_bytes() == b""
    assert proc.poll() is None  # the host goes on


def test_many_panes_each_get_their_own_child(
    tmp_path: Path, host: tuple[Path, subprocess.Popen[bytes]]
) -> None:
    sock, proc = host
    pipes = {}
    for i in range(5):
        writer, pipes[i] = pane_writer(tmp_path / f"s{i}.log", sock)
        assert writer.wait(timeout=10) == 0
    wait_until(lambda: len(descendants(proc.pid)) == 5, "five children")
    for i, pipe in pipes.items():
        os.write(pipe, f"pane {i}\n".encode() * 1000)
        os.close(pipe)
    wait_until(lambda: not descendants(proc.pid), "every child to exit")
    for i in range(5):
        assert (tmp_path / f"s{i}.log").read_bytes() == f"pane {i}\n".encode() * 1000


def run_alone(log: Path, sock: Path) -> None:
    """The pane's writer keeps its input and writes the log itself, to the end of its input."""
    writer, pipe = pane_writer(log, sock)
    for chunk in CHUNKS:
        os.write(pipe, chunk)
    os.close(pipe)
    assert writer.wait(timeout=20) == 0
    assert log.read_bytes() == b"".join(CHUNKS)


def test_with_no_host_the_pane_writer_writes_itself(tmp_path: Path, rundir: Path) -> None:
    run_alone(tmp_path / "s.log", rundir / "lw.sock")


def test_a_host_in_a_directory_others_can_enter_is_not_trusted(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    proc = start_host(shared / "lw.sock")
    try:
        run_alone(tmp_path / "s.log", shared / "lw.sock")
        assert descendants(proc.pid) == []
    finally:
        proc.kill()
        proc.wait()


def test_a_host_of_another_version_steps_aside(tmp_path: Path, rundir: Path) -> None:
    """A host started from an older copy of the writer refuses, and exits: the daemon starts a new one."""
    old = tmp_path / "old" / "logwriter.py"
    old.parent.mkdir()
    shutil.copy(WRITER, old)
    os.utime(old, ns=(1_000_000_000, 1_000_000_000))
    proc = start_host(rundir / "lw.sock", writer=old)
    try:
        run_alone(tmp_path / "s.log", rundir / "lw.sock")
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_host_on_the_same_socket_exits(host: tuple[Path, subprocess.Popen[bytes]]) -> None:
    sock, proc = host
    second = subprocess.run(
        [sys.executable, "-I", "-S", str(WRITER), "--host", str(sock)], timeout=10, check=False
    )
    assert second.returncode == 0
    assert proc.poll() is None and sock.exists()


def test_the_host_exits_once_its_parent_the_tmux_server_is_gone(rundir: Path) -> None:
    sock = rundir / "lw.sock"
    parent = subprocess.Popen(
        ["sh", "-c", f"{sys.executable} -I -S {WRITER} --host {sock} & echo $!; sleep 1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    try:
        wait_until(sock.exists, "the host's socket")
        parent.wait(timeout=10)  # tmux gone: the host is re-parented
        wait_until(lambda: _zombie(pid), "the host to exit", timeout=15)
    finally:
        if not _zombie(pid):
            os.kill(pid, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    """Gone, or exited and not yet reaped (its new parent may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2 :].split()[0] == "Z"
