"""Writing a local file from views with writev and starting its writeback early."""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from sshkeep.daemon.files import writeback


@given(parts=st.lists(st.binary(max_size=50), max_size=8), data=st.data())
def test_after_drops_exactly_the_written_bytes(parts: list[bytes], data: st.DataObject) -> None:
    whole = b"".join(parts)
    n = data.draw(st.integers(0, len(whole)))
    rest = writeback.after([memoryview(p) for p in parts], n)
    assert b"".join(bytes(v) for v in rest) == whole[n:]
    assert all(len(v) for v in rest)


def test_write_all_writes_every_view_in_order_and_starts_writeback(tmp_path: Path) -> None:
    parts = [os.urandom(300_000), b"", os.urandom(5), os.urandom(70_000)]
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        n = writeback.write_all(fd, [memoryview(p) for p in parts])
        assert writeback.start_writeback(fd, 0, n)  # Linux: sync_file_range is there
        assert not writeback.start_writeback(fd, n, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert n == sum(map(len, parts))
    assert path.read_bytes() == b"".join(parts)


def test_write_all_of_nothing_writes_nothing(tmp_path: Path) -> None:
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        assert writeback.write_all(fd, [memoryview(b"")]) == 0
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == b""
