"""The audit log on a full disk: a line torn by ENOSPC is cut off again, lines that do not fit wait
in memory in order, and the chain verifies once they are written."""

from __future__ import annotations

import asyncio
import errno
import os
from pathlib import Path

import pytest

from sshkeep.common import auditchain
from sshkeep.common.settings import Settings
from sshkeep.daemon.api import audit as audit_mod
from sshkeep.daemon.api.audit import AuditLog


def test_torn_lines_are_cut_and_held_lines_chain_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "audit.log"
    real_write = os.write
    full = [False]

    def write(fd: int, data: bytes | memoryview) -> int:
        if full[0] and fd != 1 and fd != 2:
            if len(data) > 10:
                return real_write(fd, bytes(data[:10]))  # half a line fits, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(audit_mod.os, "write", write)
    monkeypatch.setattr(audit_mod, "RETRY_FIRST", 0.01)
    log = AuditLog(path, Settings)

    async def go() -> None:
        await log.write({"n": 0})
        full[0] = True
        before = path.read_bytes()
        for i in range(1, 4):
            await log.write({"n": i})  # never fails the caller
        assert path.read_bytes() == before  # no torn line stays
        assert log.waiting() is not None and "3 audit lines" in str(log.waiting())
        full[0] = False
        for _ in range(200):
            if log.waiting() is None:
                break
            await asyncio.sleep(0.02)
        assert log.waiting() is None
        await log.write({"n": 4})

    try:
        asyncio.run(go())
    finally:
        log.close()
    report = auditchain.verify(path)
    assert report.ok and report.lines == 5, report.text()
    assert [line.split('"n":')[1][0] for line in path.read_text().splitlines()] == list("01234")


def test_beyond_the_memory_bound_the_loss_is_counted_in_the_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "audit.log"
    real_write = os.write
    full = [False]

    def write(fd: int, data: bytes | memoryview) -> int:
        if full[0] and fd not in (1, 2):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(audit_mod.os, "write", write)
    monkeypatch.setattr(audit_mod, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(audit_mod, "MAX_HELD", 2)
    log = AuditLog(path, Settings)

    async def go() -> None:
        await log.write({"n": 0})
        full[0] = True
        for i in range(1, 6):
            await log.write({"n": i})
        full[0] = False
        for _ in range(200):
            if log.waiting() is None:
                break
            await asyncio.sleep(0.02)

    try:
        asyncio.run(go())
    finally:
        log.close()
    lines = path.read_text().splitlines()
    assert auditchain.verify(path).ok
    assert '"event":"audit_gap"' in lines[1] and '"lost":3' in lines[1]
    assert '"n":4' in lines[2] and '"n":5' in lines[3]
