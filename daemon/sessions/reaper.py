"""Closing dead sessions: on request (`cleanup_dead_sessions`) and by the periodic reaper."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping

import structlog

from sshkeep.common.errors import SessionNotFound
from sshkeep.common.models.admin import CleanupResult
from sshkeep.common.settings import Settings
from sshkeep.daemon.sessions.session import Session

log = structlog.get_logger(__name__)

# The reaper re-reads config.yml at least this often, so a changed max age applies quickly.
REAP_INTERVAL_MAX = 5.0


class Reaper:
    """Closes sessions that have been disconnected too long, and drops jobs finished too long ago.

    Built and started by the composition root (daemon/server.py) from the live map of sessions,
    the manager's `close`, `settings` (the current tunables; read off the event loop) and the jobs'
    `cleanup` (finished jobs older than a max age; returns their ids)."""

    def __init__(
        self,
        sessions: Mapping[str, Session],
        close: Callable[[str], Awaitable[None]],
        settings: Callable[[], Settings],
        jobs_cleanup: Callable[[float], Awaitable[list[str]]] | None = None,
    ) -> None:
        self.sessions = sessions
        self.close = close
        self.settings = settings
        self.jobs_cleanup = jobs_cleanup
        self._task: asyncio.Task[None] | None = None

    async def cleanup(self, max_age: float) -> CleanupResult:
        """Close every disconnected session that has been dead for at least `max_age` seconds."""
        now = time.time()
        removed: list[str] = []
        kept: list[str] = []
        for sid, s in list(self.sessions.items()):
            if not s.dead or s.closed:
                continue
            age = now - s.dead_at if s.dead_at is not None else 0.0
            if age < max_age:
                kept.append(sid)
                continue
            try:
                await self.close(sid)
            except SessionNotFound:
                continue  # closed meanwhile by another request
            removed.append(sid)
        if removed:
            log.info("dead_sessions_removed", sessions=removed, max_age=max_age)
        removed_jobs = await self.jobs_cleanup(max_age) if self.jobs_cleanup is not None else []
        return CleanupResult(removed=removed, kept=kept, max_age_seconds=max_age, removed_jobs=removed_jobs)

    async def _reap_forever(self) -> None:
        """Close sessions dead for longer than `settings.dead_session_max_age`, and drop jobs finished
        longer than `settings.finished_job_max_age` ago (0: never), forever."""
        while True:
            interval = REAP_INTERVAL_MAX  # also when off: look at the config again later
            try:
                settings = await asyncio.to_thread(self.settings)
                max_age = settings.dead_session_max_age
                if max_age > 0:
                    interval = min(REAP_INTERVAL_MAX, max(0.5, max_age / 4))
                    await self.cleanup(max_age)
                job_age = settings.finished_job_max_age
                if job_age > 0 and self.jobs_cleanup is not None:
                    interval = min(interval, max(0.5, job_age / 4))
                    await self.jobs_cleanup(job_age)
            except Exception:  # the reaper must outlive any one failure
                log.exception("reaper_failed")
            await asyncio.sleep(interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._reap_forever(), name="dead-session-reaper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
