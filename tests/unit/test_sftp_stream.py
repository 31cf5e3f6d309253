"""Streamed SFTP reads and writes against OpenSSH's own sftp-server on pipes (no ssh, no sshd):
pieces in order, requests kept in flight across pieces, short reads and ends of file, local copies
written from the views, uploads finished in one round trip."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pytest

from sshkeep.daemon.files import local, sftp
from sshkeep.daemon.files.sftp import FXF_CREAT, FXF_READ, FXF_TRUNC, FXF_WRITE, Attrs, SftpClient, SftpError

# Installed with OpenSSH's server, which the integration tests need as well.
PLACES = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server")
SERVER = next((p for p in PLACES if os.access(p, os.X_OK)), shutil.which("sftp-server"))


@pytest.fixture(autouse=True)
def small_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sftp, "WINDOW", 3)  # several windows' worth of requests in a small file


async def client() -> SftpClient:
    assert SERVER is not None, "OpenSSH's sftp-server is not installed (openssh-server)"
    c = await SftpClient.start([SERVER], "test")
    c.read_chunk = c.write_chunk = 1000  # many requests per piece
    return c


async def test_write_stream_then_read_stream_round_trip(tmp_path: Path) -> None:
    data = os.urandom(123_457)
    c = await client()
    try:
        path = str(tmp_path / "f.bin")
        h = await c.open(path, FXF_WRITE | FXF_CREAT | FXF_TRUNC)
        w = c.write_stream(h, 0)
        for start in range(0, len(data), 7_777):  # pieces that are no multiple of the chunk
            await w.send(data[start : start + 7_777])
        await w.finish()
        await c.close_handle(h)
        assert Path(path).read_bytes() == data  # noqa: ASYNC240
        for piece, offset in ((5_000, 0), (1, 0), (10**9, 0), (4_096, 100_000)):
            h = await c.open(path, FXF_READ)
            parts = [p async for p in c.read_stream(h, offset, piece)]
            await c.close_handle(h)
            assert b"".join(parts) == data[offset:]
            assert all(len(p) >= min(piece, 1000) for p in parts[:-1])
    finally:
        await c.close()


async def test_read_stream_of_an_empty_file_and_a_short_reading_one(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    c = await client()
    try:
        h = await c.open(str(empty), FXF_READ)
        assert [p async for p in c.read_stream(h, 0, 4096)] == []
        await c.close_handle(h)
        # /proc files say size 0 and answer reads short: every byte still comes, once, in order.
        h = await c.open("/proc/self/mountinfo", FXF_READ)
        got = b"".join([p async for p in c.read_stream(h, 0, 4096)])
        await c.close_handle(h)
        assert got == Path("/proc/self/mountinfo").read_bytes()  # noqa: ASYNC240 - same mount namespace
    finally:
        await c.close()


async def test_read_views_hand_over_the_data_unjoined(tmp_path: Path) -> None:
    data = os.urandom(54_321)
    (tmp_path / "f").write_bytes(data)
    c = await client()
    try:
        h = await c.open(str(tmp_path / "f"), FXF_READ)
        pieces = [views async for views in c.read_views(h, 0, 4_000)]
        await c.close_handle(h)
    finally:
        await c.close()
    assert b"".join(bytes(v) for views in pieces for v in views) == data
    assert all(isinstance(v, memoryview) for views in pieces for v in views)
    assert all(sum(map(len, views)) >= 4_000 for views in pieces[:-1])


async def test_stream_to_a_part_file_then_upload_and_finish(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "BLOCK", 3_000)
    data = os.urandom(77_777)
    (tmp_path / "src").write_bytes(data)
    c = await client()
    try:
        sink = local._PartFile(tmp_path / "copy")
        await sink.open()
        _a, size, digest = await local._stream_remote(c, str(tmp_path / "src"), "src", sink, 10**9)
        await sink.commit()
        assert (size, digest) == (len(data), hashlib.sha256(data).hexdigest())
        assert (tmp_path / "copy").read_bytes() == data
        assert not (tmp_path / "copy.part").exists()
        h = await c.open(str(tmp_path / "up"), FXF_WRITE | FXF_CREAT | FXF_TRUNC)
        written, up_digest = await local.upload(c, h, tmp_path / "copy")
        await c.finish_upload(h, Attrs(permissions=0o640))
        assert (written, up_digest) == (len(data), digest)
        assert (tmp_path / "up").read_bytes() == data
        assert stat.S_IMODE((tmp_path / "up").stat().st_mode) == 0o640
        # The handle is closed: asking again fails, once every answer is in.
        with pytest.raises(SftpError):
            await c.finish_upload(h, Attrs(permissions=0o600))
        assert c.alive
    finally:
        await c.close()


async def test_an_aborted_part_file_leaves_nothing(tmp_path: Path) -> None:
    sink = local._PartFile(tmp_path / "out")
    await sink.open()
    await sink.write(b"x" * 10_000)
    await sink.write([memoryview(b"y" * 10)])
    await sink.abort()
    assert list(tmp_path.iterdir()) == []  # noqa: ASYNC240


async def test_a_failed_block_is_raised_by_commit_and_abort_cleans_up(tmp_path: Path) -> None:
    sink = local._PartFile(tmp_path / "out")
    await sink.open()
    assert sink.fd is not None
    os.close(sink.fd)  # the worker thread's write fails (EBADF)
    sink.fd = os.open(os.devnull, os.O_RDONLY)  # a read-only fd in its place: writing fails too
    await sink.write(b"x" * 10_000)
    with pytest.raises(OSError):
        await sink.commit()
    await sink.abort()
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "out.part").exists()
