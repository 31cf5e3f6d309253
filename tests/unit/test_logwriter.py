"""The pipe-pane writer (daemon/sessions/logwriter.py) and the gap sidecar reader: what a full disk
keeps out of a log is counted exactly, prompt markers are kept, and logging resumes."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from sshkeep.daemon.sessions.loggaps import WRITER, GapLog, gaps_path, pipe_command
from sshkeep.daemon.sessions.store import _SAVE_COMMAND, _SAVE_SESSION, compact


def _writer_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("logwriter", WRITER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lw = _writer_module()


class Disk:
    """fallocate that says "full" while `full` is set (the writes themselves go to a real file)."""

    supported = True

    def __init__(self) -> None:
        self.full = False

    def reserve(self, fd: int, start: int, length: int) -> bool:
        return not self.full


def test_split_markers_keeps_osc133_and_counts_the_rest() -> None:
    data = b"abc\x1b]133;D;0;sk=n:2\x07xy\x1b]133;broken\x1b[0mzz"
    segments, carry = lw.split_markers(data)
    assert segments == [3, b"\x1b]133;D;0;sk=n:2\x07", len(data) - 3 - 17]
    assert carry == b""
    segments, carry = lw.split_markers(b"out\x1b]13")
    assert (segments, carry) == ([3], b"\x1b]13")


def test_full_disk_drops_counted_keeps_markers_and_resumes(tmp_path: Path) -> None:
    log, gaps = tmp_path / "s.log", tmp_path / "s.gaps"
    disk = Disk()
    w = lw.Writer(str(log), str(gaps), disk)
    w.feed(b"hello\r\n")
    disk.full = True
    w.reserved = w.pos + 4096  # the reserve is used up but for room for markers
    marker = b"\x1b]133;D;0;sk=n:3\x07"
    w.feed(b"A" * 1000 + marker + b"B" * 10)
    assert w.low
    assert log.read_bytes() == b"hello\r\n" + marker
    reader = GapLog(gaps)
    reader.refresh()
    # The gap after the marker is open (its running count goes out at most once a second).
    assert reader.gaps.keys() == {7, 7 + len(marker)} and reader.gaps[7] == 1000 and reader.dropping
    disk.full = False
    w.retry_at = 0
    w.tick()
    assert not w.low
    w.feed(b"after\r\n")
    w.close()
    assert log.read_bytes() == b"hello\r\n" + marker + b"after\r\n"
    reader.refresh()
    assert reader.gaps == {7: 1000, 7 + len(marker): 10}
    assert not reader.dropping and reader.total() == 1010
    assert reader.between(7 + len(marker), 7 + len(marker)) == (10, 0)
    assert reader.between(0, 6) == (0, 0)


def test_an_unknown_gap_is_counted_apart(tmp_path: Path) -> None:
    reader = GapLog(tmp_path / "x.gaps")
    reader.note_unknown(42)
    reader.refresh()
    assert reader.between(0, 100) == (0, 1) and reader.total() == 0


def test_pipe_command_runs_the_writer_isolated(tmp_path: Path) -> None:
    log = tmp_path / "s-1.log"
    assert gaps_path(log) == tmp_path / "s-1.gaps"
    cmd = pipe_command(log)
    assert cmd.startswith("exec ") and " -I -S " in cmd and str(WRITER) in cmd


@pytest.mark.parametrize("nonblocking", [False, True])
def test_writer_process_appends_every_chunk_until_input_ends(tmp_path: Path, nonblocking: bool) -> None:
    """The writer as tmux runs it: chunks in on stdin (blocking, as tmux's pipe is, or set
    non-blocking), all of them in the log in order, and an exit at end of input."""
    log, gaps = tmp_path / "s.log", tmp_path / "s.gaps"
    read_end, write_end = os.pipe()
    if nonblocking:
        os.set_blocking(read_end, False)
    proc = subprocess.Popen([sys.executable, "-I", "-S", str(WRITER), str(log), str(gaps)], stdin=read_end)
    os.close(read_end)
    chunks = [b"echo one\r\n", b"one\r\n\x1b]133;D;0;sk=ab:1\x07", b"x" * 100_000, b"$ "]
    for chunk in chunks:
        os.write(write_end, chunk)
    os.close(write_end)
    assert proc.wait(timeout=20) == 0
    assert log.read_bytes() == b"".join(chunks)
    assert gaps.read_bytes() == b""


def test_compact_keeps_the_last_upsert_of_a_row_but_not_across_a_delete() -> None:
    a1 = (_SAVE_COMMAND, ("s", "c1", 1))
    a2 = (_SAVE_COMMAND, ("s", "c1", 2))
    sess = (_SAVE_SESSION, ("s", 10, 2))
    delete = ("DELETE FROM commands WHERE session_id=?", ("s",))
    assert compact([a1, sess, a2]) == [sess, a2]
    assert compact([a1, delete, a2]) == [a1, delete, a2]


def test_without_reserve_a_marker_that_does_not_fit_waits(tmp_path: Path) -> None:
    """A filesystem that cannot reserve: writes themselves fail, markers wait in memory, in order."""
    log, gaps = tmp_path / "s.log", tmp_path / "s.gaps"
    disk = Disk()
    disk.supported = False
    w = lw.Writer(str(log), str(gaps), disk)
    real = w._write
    full = [True]
    w._write = lambda fd, data: 0 if full[0] else real(fd, data)
    marker = b"\x1b]133;D;7;sk=n:2\x07"
    w.feed(b"lost" + marker + b"more")
    assert w.low and w.pending == [4, marker, 4]
    assert log.read_bytes() == b""
    full[0] = False
    w.retry_at = 0
    w.tick()
    assert not w.low and log.read_bytes() == marker
    reader = GapLog(gaps)
    reader.refresh()
    assert reader.gaps == {0: 4, len(marker): 4} and not reader.dropping
