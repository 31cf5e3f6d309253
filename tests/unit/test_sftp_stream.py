"""Streamed SFTP reads and writes against OpenSSH's own sftp-server on pipes (no ssh, no sshd):
pieces in order, requests kept in flight across pieces, short reads and ends of file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from sshkeep.daemon.files import sftp
from sshkeep.daemon.files.sftp import FXF_CREAT, FXF_READ, FXF_TRUNC, FXF_WRITE, SftpClient

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
