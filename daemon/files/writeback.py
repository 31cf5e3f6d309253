"""Writing a local file out as it grows: blocks go to the file with one `os.writev` of the views
they arrived in (no join), and the kernel is asked to start writing each block back to the disk
right away (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which does not wait), so the fsync before
the rename finds little left to do instead of the whole file. Without `sync_file_range` (not
Linux) the fsync does it all, as before.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Sequence

SYNC_FILE_RANGE_WRITE = 2


def _load() -> Callable[[int, int, int, int], int] | None:
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    call: Callable[[int, int, int, int], int] = fn
    return call


_sync_file_range = _load()


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Start writing `length` bytes from `offset` of `fd` back to disk, without waiting for it;
    False when the system cannot (the final fsync still makes the file durable)."""
    fn = _sync_file_range
    if fn is None or length <= 0:
        return False
    return fn(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0


def after(views: Sequence[memoryview], n: int) -> list[memoryview]:
    """What is left of `views` once their first `n` bytes are written."""
    out: list[memoryview] = []
    for v in views:
        if n >= len(v):
            n -= len(v)
            continue
        out.append(v[n:] if n else v)
        n = 0
    return out


def write_all(fd: int, views: Sequence[memoryview]) -> int:
    """Write every byte of `views` to `fd` (writev, again after a short write): the bytes written."""
    total = 0
    rest = [v for v in views if len(v)]
    while rest:
        n = os.writev(fd, rest[:1024])  # IOV_MAX
        if n <= 0:
            raise OSError(f"writev wrote {n} bytes")
        total += n
        rest = after(rest, n)
    return total
