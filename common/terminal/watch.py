"""Noticing that a session log grew, without busy polling.

On Linux one inotify watch on the logs directory wakes the event loop when any log is written;
elsewhere a slow poll stands in. Callers get the file name of each log that changed.

A caller may ask the watcher to stop reading events for a moment after a batch (`pause_after`):
while a log streams output, each of its appends is an event, and the events of one file that
are not read yet merge into one in the kernel. The events of every other log wait that long too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import struct
from collections.abc import Callable
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

_IN_MODIFY = 0x00000002
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000
_EVENT = struct.Struct("iIII")


_READ_SIZE = 65536  # bytes of inotify events per read


class LogWatcher:
    """Calls `on_change(name)` whenever a file in `directory` is written."""

    def __init__(
        self,
        directory: Path,
        on_change: Callable[[str], None],
        poll_interval: float = 0.05,
        pause_after: Callable[[set[str]], float] | None = None,
    ) -> None:
        self._dir = directory
        self._on_change = on_change
        self._pause_after = pause_after
        self._resume: asyncio.TimerHandle | None = None
        self._poll_interval = poll_interval
        self._fd: int | None = None
        self._poll_task: asyncio.Task[None] | None = None
        self._sizes: dict[str, int] = {}

    def start(self) -> None:
        if not self._start_inotify():
            self._poll_task = asyncio.create_task(self._poll(), name="log-poll")

    def _start_inotify(self) -> bool:
        name = ctypes.util.find_library("c")
        if not name:
            return False
        try:
            libc = ctypes.CDLL(name, use_errno=True)
            fd = libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
            if fd < 0:
                return False
            wd = libc.inotify_add_watch(fd, os.fsencode(self._dir), _IN_MODIFY)
            if wd < 0:
                os.close(fd)
                return False
        except (AttributeError, OSError):
            return False
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._read_events)
        return True

    def _read_events(self) -> None:
        assert self._fd is not None
        names: set[str] = set()
        while True:
            try:
                buf = os.read(self._fd, _READ_SIZE)
            except BlockingIOError:
                break
            pos = 0
            while pos + _EVENT.size <= len(buf):
                _wd, _mask, _cookie, length = _EVENT.unpack_from(buf, pos)
                raw = buf[pos + _EVENT.size : pos + _EVENT.size + length]
                names.add(raw.rstrip(b"\0").decode(errors="replace"))
                pos += _EVENT.size + length
            if len(buf) < _READ_SIZE:
                break  # drained (the fd stays readable if more came since): no read just to fail
        for name in names:
            self._on_change(name)
        pause = self._pause_after(names) if self._pause_after is not None and names else 0.0
        if pause > 0:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._fd)
            self._resume = loop.call_later(pause, self._read_again)

    def _read_again(self) -> None:
        self._resume = None
        if self._fd is not None:
            asyncio.get_running_loop().add_reader(self._fd, self._read_events)

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            with contextlib.suppress(OSError):
                for entry in os.scandir(self._dir):
                    size = entry.stat().st_size
                    if self._sizes.get(entry.name) != size:
                        self._sizes[entry.name] = size
                        self._on_change(entry.name)

    def stop(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._poll_task is not None:
            self._poll_task.cancel()
            self._poll_task = None
