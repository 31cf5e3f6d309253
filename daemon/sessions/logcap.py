"""Keeping each session log under its size cap without moving offsets.

Command records point into the log by absolute byte offset, and tmux's `cat` keeps appending,
so the log is never truncated or rewritten: old bytes are punched out (fallocate PUNCH_HOLE), the
file keeps its length, its disk use shrinks, and readers report what was dropped.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_FALLOC_FL_KEEP_SIZE = 0x01
_FALLOC_FL_PUNCH_HOLE = 0x02
_BLOCK = 4096

_libc: ctypes.CDLL | None = None


def _fallocate() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        name = ctypes.util.find_library("c")
        if name:
            _libc = ctypes.CDLL(name, use_errno=True)
    return _libc


def drop_target(size: int, dropped: int, scanned: int, cap: int) -> int:
    """New drop offset (block-aligned) when the kept part exceeds `cap`, else `dropped`.

    Keeps three quarters of the cap so punching happens rarely, and never drops bytes that the
    marker scanner has not read yet.
    """
    if cap <= 0 or size - dropped <= cap:
        return dropped
    target = min(scanned, size - (cap * 3) // 4)
    target -= target % _BLOCK
    return max(dropped, target)


def punch(path: Path, start: int, end: int) -> bool:
    """Free the disk blocks of bytes [start, end) of `path`; reads there return zeros after."""
    if end <= start:
        return True
    libc = _fallocate()
    if libc is None or not hasattr(libc, "fallocate"):
        return False
    fd = os.open(path, os.O_WRONLY)
    try:
        rc = libc.fallocate(
            fd,
            _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE,
            ctypes.c_long(start),
            ctypes.c_long(end - start),
        )
        return bool(rc == 0)
    finally:
        os.close(fd)
