"""A full disk under SSHKEEP_HOME (a real 8 MB tmpfs): replies say so, commands still end with what
could be recorded and an exact count of what could not, the log writer stays attached and resumes
once space returns, and the state database and the audit log come through intact."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from sshkeep.common.models.sessions import CommandQuery, OpenSessionRequest, SendCommandRequest
from sshkeep.common.terminal import markers as mk
from tests.instance import Instance, instance_of
from tests.sshd import SshServer
from tests.support import default_connections, eventually, wait_until

SEQ = 600000


@pytest.fixture
def small_home() -> Iterator[Path]:
    """An empty 8 MB tmpfs, mounted for the test and unmounted after."""
    home = Path(tempfile.mkdtemp(prefix="skfull-", dir="/tmp"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(home)], check=True)
    try:
        yield home
    finally:
        subprocess.run(["umount", "-l", str(home)], check=False)
        with contextlib.suppress(OSError):
            home.rmdir()


@pytest.fixture
def full_disk_instance(sshd: SshServer, small_home: Path) -> Iterator[Instance]:
    with instance_of(default_connections(sshd), home=small_home) as inst:
        yield inst


def fill(home: Path) -> Path:
    """Take every free block of `home`'s filesystem."""
    filler = home / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    block = b"x" * 65536
    try:
        while True:
            try:
                os.write(fd, block)
            except OSError:
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(fd)
    assert os.statvfs(home).f_bavail == 0
    return filler


def pane_pipe(inst: Instance, sid: str) -> str:
    return inst.tmux("display-message", "-p", "-t", f"={sid}:", "#{pane_pipe}").stdout.strip()


def output_in_log(inst: Instance, sid: str) -> bytes:
    """The raw bytes the log holds of the latest (bash) command's output: from its C marker to the
    D marker that ended it (the last one: nothing ran since)."""
    nonce = inst.tmux("show-options", "-v", "-t", f"={sid}:", "@sshkeep_nonce").stdout.strip()
    data = (inst.paths.logs_dir / f"{sid}.log").read_bytes()
    found, _ = mk.find_markers(data, 0, nonce)
    end = [m for m in found if m.kind == "D"][-1]
    start = [m for m in found if m.kind == "C" and m.start < end.start][-1]
    return data[start.end : end.start]


def seq_bytes(n: int) -> int:
    """Bytes `seq 1 n` prints on a terminal (each line ends CR LF)."""
    return sum(len(str(i)) + 2 for i in range(1, n + 1))


async def test_full_disk_commands_end_counted_and_logging_resumes(full_disk_instance: Instance) -> None:
    inst = full_disk_instance
    async with inst.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        before = await c.send_command(sid, SendCommandRequest(command="echo before"))
        assert (before.status, before.output, before.dropped_bytes, before.disk) == (
            "completed",
            "before",
            0,
            None,
        )

        filler = fill(inst.home)
        big = await c.send_command(sid, SendCommandRequest(command=f"seq 1 {SEQ}", timeout=50))
        # The command ends (its prompt marker was kept), with its exit code and what could be recorded.
        assert big.status == "completed" and big.exit_code == 0, big
        assert big.dropped_bytes > 0
        assert "could not be recorded" in (big.hint or "") and "Disk full" in (big.hint or "")
        assert big.disk is not None

        async def dropping() -> bool:
            notice = (await c.health()).disk
            return notice is not None and sid in notice.dropping

        await eventually(dropping, "the health reply to name the terminal whose output is dropped")
        # Exact: what the log holds of the output plus what was counted as dropped is all of it.
        assert len(output_in_log(inst, sid)) + big.dropped_bytes == seq_bytes(SEQ)
        assert pane_pipe(inst, sid) == "1"

        during = await c.send_command(sid, SendCommandRequest(command="echo during"))
        assert (during.status, during.exit_code, during.output) == ("completed", 0, "")
        assert during.dropped_bytes == len(b"during\r\n")
        for i in range(20):  # the terminal stays usable; the audit lines outgrow the file's last page
            res = await c.send_command(sid, SendCommandRequest(command=f"(exit {i % 3})"))
            assert (res.status, res.exit_code) == ("completed", i % 3)
        health = await c.health()
        assert health.disk is not None and health.disk.free_bytes == 0
        assert any(w.startswith("audit log:") for w in health.disk.waiting), health.disk
        assert any(w.startswith("state database:") for w in health.disk.waiting), health.disk
        listing = await c.list_sessions()
        assert listing.sessions[0].disk is None  # nested: only the top-level reply carries it
        info = await c.get_session(sid)
        assert info.disk is not None and "Disk full" in (info.hint or "")
        status, error = inst.curl("/v1/sessions/nope-123456")
        assert status == 404 and "Disk full" in error["error"]["hint"]

        filler.unlink()

        async def resumed() -> bool:
            return (await c.health()).disk is None

        await eventually(resumed, "the log writer and the state database to resume", timeout=30)
        after = await c.send_command(sid, SendCommandRequest(command="echo after"))
        assert (after.status, after.output, after.dropped_bytes, after.disk, after.hint) == (
            "completed",
            "after",
            0,
            None,
            None,
        )
        exact = await c.send_command(sid, SendCommandRequest(command="seq 1 20000", timeout=30))
        page = await c.get_command(sid, exact.command_id, CommandQuery(offset=0, limit=20000))
        assert page.output.split("\n") == [str(i) for i in range(1, 20001)]
        assert page.dropped_bytes == 0
        # The earlier command still reports its count.
        again = await c.get_command(sid, big.command_id, CommandQuery(wait=0))
        assert again.dropped_bytes == big.dropped_bytes
        assert pane_pipe(inst, sid) == "1"

    wanted = {before.command_id, big.command_id, during.command_id, after.command_id}

    def integrity_and_ids() -> tuple[object, set[str]]:
        db = sqlite3.connect(inst.paths.db_file)
        try:
            check = db.execute("PRAGMA integrity_check").fetchone()
            rows = db.execute("SELECT command_id FROM commands WHERE session_id=?", (sid,))
            return check, {row[0] for row in rows}
        finally:
            db.close()

    wait_until(lambda: wanted <= integrity_and_ids()[1], "every command record to reach the database")
    assert integrity_and_ids()[0] == ("ok",)
    verify = inst.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    audit = inst.paths.audit_log.read_text()
    assert "echo during" in audit  # held in memory while the disk was full, written after


async def test_detached_log_is_reattached_and_the_loss_said(full_disk_instance: Instance) -> None:
    inst = full_disk_instance
    async with inst.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        res = await c.send_command(sid, SendCommandRequest(command="sleep 3; echo tail", timeout=1))
        assert res.status == "running"
        inst.tmux("pipe-pane", "-t", f"={sid}:")  # close the pipe, as a writer that died would
        assert pane_pipe(inst, sid) == "0"

        async def reattached() -> bool:
            return pane_pipe(inst, sid) == "1"

        await eventually(reattached, "the monitor to re-attach the log", timeout=15)
        done = await c.get_command(sid, res.command_id, CommandQuery(wait=20))
        assert (done.status, done.exit_code, done.output) == ("completed", 0, "tail")
        assert done.uncounted_gaps == 1 and "lost uncounted" in (done.hint or "")
        after = await c.send_command(sid, SendCommandRequest(command="echo again"))
        assert (after.status, after.output, after.uncounted_gaps, after.hint) == (
            "completed",
            "again",
            0,
            None,
        )


async def test_daemon_restarts_on_a_full_disk_and_keeps_the_counts(full_disk_instance: Instance) -> None:
    inst = full_disk_instance
    async with inst.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        filler = fill(inst.home)
        big = await c.send_command(sid, SendCommandRequest(command="seq 1 200000", timeout=50))
        assert big.status == "completed" and big.dropped_bytes > 0
    inst.stop()
    inst.start()  # adopts the session from tmux while the disk is still full
    async with inst.client() as c:
        again = await c.get_command(sid, big.command_id, CommandQuery(wait=0))
        assert (again.status, again.exit_code, again.dropped_bytes) == ("completed", 0, big.dropped_bytes)
        res = await c.send_command(sid, SendCommandRequest(command="echo full"))
        assert (res.status, res.exit_code) == ("completed", 0) and res.disk is not None
        filler.unlink()

        async def resumed() -> bool:
            return (await c.health()).disk is None

        await eventually(resumed, "everything to be written after the restart", timeout=30)
        after = await c.send_command(sid, SendCommandRequest(command="echo after"))
        assert (after.status, after.output, after.dropped_bytes) == ("completed", "after", 0)
    verify = inst.cli("audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    db = sqlite3.connect(inst.paths.db_file)
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
