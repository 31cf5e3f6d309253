"""sshkeep.common.terminal.watch: log changes through inotify, and pausing after a batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sshkeep.common.terminal.watch import LogWatcher


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


async def _until(cond: object, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_changes_are_reported_and_a_pause_delays_but_never_loses_them(tmp_path: Path) -> None:
    seen: list[str] = []
    batches: list[set[str]] = []

    def pause_after(names: set[str]) -> float:
        batches.append(set(names))
        return 1.0 if len(batches) == 1 else 0.0  # after the first batch only

    w = LogWatcher(tmp_path, seen.append, pause_after=pause_after)
    w.start()
    try:
        (tmp_path / "a.log").write_bytes(b"1")
        await _until(lambda: "a.log" in seen)
        # Paused now: a change of another log waits for the pause to end, then shows.
        seen.clear()
        _append(tmp_path / "b.log", b"2")
        _append(tmp_path / "a.log", b"3")
        await asyncio.sleep(0.05)
        assert seen == []
        await _until(lambda: {"a.log", "b.log"} <= set(seen))
        assert batches and all(batches)
    finally:
        w.stop()


async def test_without_pause_every_change_is_reported(tmp_path: Path) -> None:
    seen: list[str] = []
    w = LogWatcher(tmp_path, seen.append)
    w.start()
    try:
        for i in range(3):
            seen.clear()
            _append(tmp_path / "c.log", b"%d" % i)
            await _until(lambda: "c.log" in seen)
    finally:
        w.stop()
