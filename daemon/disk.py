"""A full disk, as every reply tells it: what sshkeep could not write, and what waits for space.

The parts that write to disk report here: the session logs through their gap sidecars (see
daemon/sessions/loggaps.py; a terminal whose writer drops output now), the state database and the
audit log (writes held in memory, retried with a backoff until space returns). While anything is
wrong, `notice()` gives the `disk` field and the sentence added to every reply's hint.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

from sshkeep.common.models.base import DiskNotice


class _Gaps(Protocol):
    def total(self) -> int: ...


class _Pane(Protocol):
    """What a terminal (daemon/sessions/session.py) shows of its log's gaps."""

    @property
    def key(self) -> str: ...

    @property
    def gaps(self) -> _Gaps: ...


FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
STATVFS_EVERY = 1.0  # seconds a free-space reading is reused


def is_full_error(exc: BaseException) -> bool:
    """An error that means "no space left": OSError ENOSPC/EDQUOT, or SQLite's SQLITE_FULL."""
    if isinstance(exc, OSError):
        return exc.errno in FULL_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(exc)
    return False


class DiskWatch:
    """What could not be written, from every part of the daemon that writes."""

    def __init__(
        self,
        directory: Path,
        panes: Callable[[], Iterable[_Pane]] = list,
        dropping: Callable[[], Iterable[_Pane]] = list,
    ) -> None:
        self.directory = directory
        self.panes = panes  # every terminal (their gaps' totals)
        self.dropping = dropping  # the terminals whose writer drops output now (asked per reply)
        # part -> what it holds in memory because its writes failed (None: nothing)
        self.parts: dict[str, Callable[[], str | None]] = {}
        self._free: tuple[float, int | None] = (0.0, None)

    def watch(self, part: str, waiting: Callable[[], str | None]) -> None:
        """Ask `waiting()` for every notice: what `part` (state database, audit log) holds unwritten."""
        self.parts[part] = waiting

    def free_bytes(self) -> int | None:
        at, value = self._free
        if time.monotonic() - at > STATVFS_EVERY:
            try:
                st = os.statvfs(self.directory)
                value = st.f_bavail * st.f_frsize
            except OSError:
                value = None
            self._free = (time.monotonic(), value)
        return value

    def notice(self) -> DiskNotice | None:
        dropping = [s.key for s in self.dropping()]
        waiting = [f"{part}: {what}" for part, fn in self.parts.items() if (what := fn()) is not None]
        if not dropping and not waiting:
            return None
        unrecorded = sum(s.gaps.total() for s in self.panes())
        parts = []
        if dropping:
            parts.append(
                f"output of {', '.join(dropping)} is being dropped (counted in dropped_bytes; commands "
                "still end and report their exit code)"
            )
        parts += waiting
        message = (
            f"Disk full where sshkeep keeps its files ({self.directory}): "
            + "; ".join(parts)
            + ". Everything resumes by itself once space is freed."
        )
        return DiskNotice(
            message=message,
            free_bytes=self.free_bytes(),
            dropping=dropping,
            unrecorded_bytes=unrecorded,
            waiting=waiting,
        )
