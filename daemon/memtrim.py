"""Giving memory back to the system after large transfers.

glibc's malloc raises its mmap threshold each time it frees a large block it had mapped (up to
32 MiB), so after one multi-megabyte transfer later buffers of that size come from the heap and,
once freed, stay in the process: a daemon that had moved a 50 MB file as JSON content kept ~55 MB
more RSS from then on, its traced Python memory unchanged (and the 200 sessions of the scale
benchmark, opened after such transfers, seemed to cost that). `trim_soon` runs `malloc_trim(0)`
once, a moment after a large request or reply (the app calls it as a reply is prepared) or a
streamed local copy, in a worker thread, instead of fixing the threshold for the whole process,
which would map and unmap every large buffer of the output path. Before the trim, the cyclic
collector runs once: the daemon spaces its passes far apart (see `daemon/server.py`), and what a
large transfer left in a reference cycle would otherwise hold its memory until the next one.
Without glibc (macOS, musl) it does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

# Transfers smaller than this leave too little behind to be worth a trim.
TRIM_AFTER_BYTES = 1024 * 1024
# Long enough for the reply (its JSON encoding, the socket write) to be done and freed.
TRIM_DELAY_SECONDS = 1.0


def _load() -> Callable[[int], int] | None:
    try:  # the symbols already loaded (libc's among them)
        fn = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    trim: Callable[[int], int] = fn
    return trim


_malloc_trim = _load()
_pending: asyncio.TimerHandle | None = None
_running: set[asyncio.Task[None]] = set()


def trim_soon(nbytes: int) -> None:
    """After a transfer of `nbytes`: return the allocator's free memory to the system shortly
    (one trim for any number of transfers within the delay)."""
    global _pending
    if nbytes < TRIM_AFTER_BYTES or _malloc_trim is None or _pending is not None:
        return
    loop = asyncio.get_running_loop()
    _pending = loop.call_later(TRIM_DELAY_SECONDS, _start, loop)


def _start(loop: asyncio.AbstractEventLoop) -> None:
    global _pending
    _pending = None
    task = loop.create_task(_trim())
    _running.add(task)
    task.add_done_callback(_running.discard)


async def _trim() -> None:
    fn = _malloc_trim
    if fn is None:
        return
    # A large body or reply can sit in a reference cycle (a request and its handler's frames, an
    # error's traceback) until the collector's next pass, which the daemon spaces 10,000
    # allocations apart: pass now (a few ms over what start-up did not freeze), then trim.
    gc.collect()
    try:
        await asyncio.to_thread(fn, 0)  # walks every arena: off the event loop
    except Exception as exc:  # never worth failing anything for
        log.debug("malloc_trim_failed", error=str(exc))
