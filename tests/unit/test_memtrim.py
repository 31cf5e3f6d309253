"""Returning the allocator's free memory after large transfers: one trim, shortly after, for any
number of large transfers within the delay; none after small ones."""

from __future__ import annotations

import asyncio
import ctypes
import gc
import sys
import weakref

import pytest

from sshkeep.daemon import memtrim


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The trims run, recorded instead of made, a moment after each large transfer."""
    made: list[int] = []
    monkeypatch.setattr(memtrim, "_malloc_trim", made.append)
    monkeypatch.setattr(memtrim, "TRIM_DELAY_SECONDS", 0.01)
    return made


async def _until_trimmed(calls: list[int], n: int) -> None:
    """Wait (up to 2 s) until `n` trims were made and none is still running."""
    for _ in range(200):
        if len(calls) >= n and not memtrim._running:
            return
        await asyncio.sleep(0.01)


async def test_one_trim_follows_large_transfers_and_none_small_ones(calls: list[int]) -> None:
    memtrim.trim_soon(memtrim.TRIM_AFTER_BYTES - 1)
    assert memtrim._pending is None
    memtrim.trim_soon(50_000_000)
    memtrim.trim_soon(20_000_000)  # within the delay: the same trim
    assert memtrim._pending is not None
    await _until_trimmed(calls, 1)
    assert calls == [0] and memtrim._pending is None
    memtrim.trim_soon(5_000_000)  # a later transfer gets a trim of its own
    await _until_trimmed(calls, 2)
    assert calls == [0, 0]


async def test_the_trim_first_collects_cycles_that_hold_memory(calls: list[int]) -> None:
    """The daemon collects its youngest objects far apart: a large body held in a reference cycle
    is freed by the trim's own collection, not whenever the collector next runs."""

    class Holder:
        pass

    gc.disable()  # no automatic pass in between: only the trim's may free the cycle
    try:
        held = Holder()
        held.self = held  # type: ignore[attr-defined]
        held.body = b"x" * 2_000_000  # type: ignore[attr-defined]
        gone = weakref.ref(held)
        del held
        assert gone() is not None
        memtrim.trim_soon(2_000_000)
        await _until_trimmed(calls, 1)
    finally:
        gc.enable()
    assert calls == [0]
    assert gone() is None


def test_glibc_malloc_trim_is_found_where_it_exists() -> None:
    has = sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    assert (memtrim._load() is not None) == has
    if has:
        trim = memtrim._load()
        assert trim is not None and trim(0) in (0, 1)
