"""Closing dead sessions: on request (`cleanup_dead_sessions`) and by the periodic reaper."""

from __future__ import annotations

import asyncio
import time

import structlog

from sshkeep.common import settings as tunables
from sshkeep.common.errors import SessionNotFound
from sshkeep.common.models.admin import CleanupResult
from sshkeep.daemon.sessions.manager import SessionManager

log = structlog.get_logger(__name__)

# The reaper re-reads config.yml at least this often, so a changed max age applies quickly.
REAP_INTERVAL_MAX = 5.0


async def cleanup_dead_sessions(m: SessionManager, max_age: float) -> CleanupResult:
    """Close every disconnected session that has been dead for at least `max_age` seconds."""
    now = time.time()
    removed: list[str] = []
    kept: list[str] = []
    for sid, s in list(m.sessions.items()):
        if not s.dead or s.closed:
            continue
        age = now - s.dead_at if s.dead_at is not None else 0.0
        if age < max_age:
            kept.append(sid)
            continue
        try:
            await m.close(sid)
        except SessionNotFound:
            continue  # closed meanwhile by another request
        removed.append(sid)
    if removed:
        log.info("dead_sessions_removed", sessions=removed, max_age=max_age)
    removed_jobs = await m.jobs.cleanup(max_age)
    return CleanupResult(removed=removed, kept=kept, max_age_seconds=max_age, removed_jobs=removed_jobs)


async def reap_forever(m: SessionManager) -> None:
    """Close sessions dead for longer than `settings.dead_session_max_age`, and drop jobs finished for
    longer than `settings.finished_job_max_age` (0: never), forever."""
    while True:
        interval = REAP_INTERVAL_MAX  # also when off: look at the config again later
        try:
            settings = (await asyncio.to_thread(m.config.current)).settings
            max_age = tunables.dead_session_max_age(settings)
            if max_age > 0:
                interval = min(REAP_INTERVAL_MAX, max(0.5, max_age / 4))
                await cleanup_dead_sessions(m, max_age)
            job_age = tunables.finished_job_max_age(settings)
            if job_age > 0:
                interval = min(interval, max(0.5, job_age / 4))
                await m.jobs.cleanup(job_age)
        except Exception:  # the reaper must outlive any one failure
            log.exception("reaper_failed")
        await asyncio.sleep(interval)
