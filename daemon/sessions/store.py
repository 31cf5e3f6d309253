"""Command records in an embedded SQLite database (state dir, 0600).

Calls are small and run in a worker thread so the event loop never waits on the disk; writes are
queued and batched (see `Store`), so a command costs no database work while its reply is built.
"""

from __future__ import annotations

import asyncio
import contextlib
import operator
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import structlog

from sshkeep.common.models.base import CommandStatus
from sshkeep.common.models.sessions import CommandSummary
from sshkeep.daemon.disk import is_full_error

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    session_id TEXT NOT NULL,
    command_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    command TEXT NOT NULL,
    status TEXT NOT NULL,
    exit_code INTEGER,
    sent_pos INTEGER NOT NULL,
    skip_newlines INTEGER NOT NULL,
    out_start INTEGER,
    out_end INTEGER,
    started_at REAL NOT NULL,
    ended_at REAL,
    source TEXT NOT NULL DEFAULT 'agent',
    request_id TEXT,
    PRIMARY KEY (session_id, command_id)
);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    scan_pos INTEGER NOT NULL,
    next_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


@dataclass
class CommandRecord:
    """One command typed into a session, with where its output lies in the session log."""

    session_id: str
    command_id: str
    seq: int
    command: str
    status: CommandStatus
    exit_code: int | None
    sent_pos: int
    skip_newlines: int
    out_start: int | None
    out_end: int | None
    started_at: float
    ended_at: float | None = None
    # Who typed it: `agent` (send_command, answer_secret), `keys` (the agent's send_keys) or
    # `person` (typed in an attached tmux client).
    source: str = "agent"
    # The caller's idempotency key (send_command's request_id): a retry with it gets this record.
    request_id: str | None = None

    @property
    def wire_source(self) -> Literal["agent", "keys", "person"]:
        """The source as replies name it (`agent` for anything sshkeep typed itself)."""
        if self.source == "keys":
            return "keys"
        return "person" if self.source == "person" else "agent"

    def summary(self) -> CommandSummary:
        return CommandSummary(
            command_id=self.command_id,
            command=self.command,
            source=self.wire_source,
            status=self.status,
            exit_code=self.exit_code,
            started_at=self.started_at,
            ended_at=self.ended_at,
        )


_COLUMNS = [f.name for f in fields(CommandRecord)]


# How long a queued write may wait, so that a command's start and end (and the next few commands)
# go to disk in one transaction, after the reply has left.
WRITE_DELAY = 0.05

_Op = tuple[str, tuple[Any, ...]]  # (SQL, arguments)
# Upserts that update a row in place: REPLACE deletes it and inserts it anew, which rewrites its
# key's index page too (a command's end and the session counters, saved with every command, cost
# a WAL page fewer each per commit).
_SAVE_COMMAND = (
    f"INSERT INTO commands ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
    "ON CONFLICT (session_id, command_id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS if c not in ("session_id", "command_id"))
)
_SAVE_SESSION = (
    "INSERT INTO sessions (session_id, scan_pos, next_seq) VALUES (?, ?, ?) "
    "ON CONFLICT (session_id) DO UPDATE SET scan_pos=excluded.scan_pos, next_seq=excluded.next_seq"
)
_SAVE_JOB = "INSERT OR REPLACE INTO jobs (job_id, session_id, data) VALUES (?, ?, ?)"
# Upserts by key: a later one of the same key replaces an earlier one (when nothing else ran between).
_UPSERT_KEYS = {_SAVE_SESSION: 1, _SAVE_JOB: 1}
RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds between attempts while the disk is full
# Disk space kept in `<db>.reserve`: a daemon stopping on a full disk frees it to write what it held.
BALLAST = 256 * 1024


_values = operator.attrgetter(*_COLUMNS)
CHECKPOINT_EVERY = 250  # commits between WAL checkpoints (a few pages each: SQLite's 1000 pages)
_COMMAND_KEY = (_COLUMNS.index("session_id"), _COLUMNS.index("command_id"))


def coalesce(ops: list[_Op]) -> list[_Op]:
    """`ops` without the row writes a later write of the same row replaces: a command saved when
    it starts and when it ends, and the session's counters saved after every command, are written
    once per batch. Only a batch of nothing but those replacing writes is thinned (another
    statement, a delete say, may depend on the order), and the rows keep the order of their last
    write."""
    if any(sql != _SAVE_COMMAND and sql != _SAVE_SESSION for sql, _ in ops):
        return ops
    last: dict[tuple[Any, ...], int] = {}
    for i, (sql, args) in enumerate(ops):
        key = (0, args[_COMMAND_KEY[0]], args[_COMMAND_KEY[1]]) if sql == _SAVE_COMMAND else (1, args[0])
        last[key] = i
    if len(last) == len(ops):
        return ops
    return [ops[i] for i in sorted(last.values())]


def compact(ops: list[_Op]) -> list[_Op]:
    """`ops` without the upserts a later upsert of the same row makes redundant (what a full disk
    holds in memory stays bounded by the rows, not by how long the disk stays full)."""
    out: list[_Op] = []
    seen: set[tuple[str, tuple[Any, ...]]] = set()
    for sql, args in reversed(ops):
        if sql == _SAVE_COMMAND:
            key: tuple[Any, ...] | None = (args[_COMMAND_KEY[0]], args[_COMMAND_KEY[1]])
        elif sql in _UPSERT_KEYS:
            key = args[: _UPSERT_KEYS[sql]]
        else:
            key = None
            seen.clear()  # a delete (or anything else) between two upserts keeps both
        if key is not None:
            if (sql, key) in seen:
                continue
            seen.add((sql, key))
        out.append((sql, args))
    out.reverse()
    return out


def _row(rec: CommandRecord) -> tuple[Any, ...]:
    """The record's values now, in column order (the record itself keeps changing)."""
    return tuple(_values(rec))


class Store:
    """Thread-confined SQLite access behind async methods.

    Every write goes through one ordered queue, written by one worker-thread call per batch in one
    transaction: `save_soon` queues without waiting (the batch goes out `WRITE_DELAY` later, off
    the request's path); the awaited methods queue and wait until their batch is on disk;
    `flush_now` writes the queue on the event loop itself when the worker is idle (a command's
    record before its keys are typed). Reads wait for the queue first, so they see every write
    made before them.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(commands)").fetchall()}
        if "source" not in columns:  # a database from before command sources
            self._db.execute("ALTER TABLE commands ADD COLUMN source TEXT NOT NULL DEFAULT 'agent'")
        if "request_id" not in columns:  # a database from before idempotency keys
            self._db.execute("ALTER TABLE commands ADD COLUMN request_id TEXT")
        # Checkpoints (which fsync) run in the worker thread, never in a commit on the event loop
        # (see `flush_now`): every CHECKPOINT_EVERY commits, as SQLite's own would every 1000 pages.
        self._db.execute("PRAGMA wal_autocheckpoint=0")
        self._commits = 0
        self._lock = threading.Lock()
        self._queue: list[_Op] = []
        self._writer: asyncio.Task[None] | None = None
        self._batch: asyncio.Future[bool] | None = None  # the `flush_soon` of this loop turn
        self._timer: asyncio.TimerHandle | None = None
        self._full_since: float | None = None  # when writes began to fail with a full disk
        self._backoff = RETRY_FIRST
        self._ballast = path.with_name(path.name + ".reserve")
        self._make_ballast()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _write_batch(self, ops: list[_Op]) -> None:
        """One batch in one transaction (in the worker thread), then a checkpoint when it is due."""
        with self._lock:
            self._commit(ops)
            if self._commits >= CHECKPOINT_EVERY:
                try:
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # a full disk: the WAL keeps the pages until a later one
                    if not is_full_error(exc):
                        raise
                else:
                    self._commits = 0

    def _commit(self, ops: list[_Op]) -> None:
        self._db.execute("BEGIN")
        try:
            for sql, args in coalesce(ops):
                self._db.execute(sql, args)
            self._db.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled back by itself (SQLITE_FULL does): the batch is all or
            # nothing either way, and the database stays consistent.
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self._commits += 1

    @property
    def full(self) -> bool:
        """The last write failed for want of space: writes wait in memory for a retry."""
        return self._full_since is not None

    def waiting(self) -> str | None:
        """What is held in memory because the disk is full (for the replies' disk notice)."""
        if self._full_since is None:
            return None
        return (
            f"{len(self._queue)} state-database writes held in memory since "
            f"{time.strftime('%H:%M:%S', time.localtime(self._full_since))}, retried every few seconds"
        )

    def _held(self, ops: list[_Op], exc: BaseException) -> None:
        """A batch failed on a full disk: keep it (in order, before what came since), retry later."""
        self._queue = compact(ops + self._queue)
        if self._full_since is None:
            self._full_since = time.time()
            log.warning("state_db_full", error=str(exc), held=len(self._queue))
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._backoff, self._start_writer)
        self._backoff = min(RETRY_MAX, self._backoff * 2)

    def flush_now(self) -> bool:
        """Write every queued op right here, on the event loop, when nothing else is writing; False
        (nothing written) when the worker holds the database or a checkpoint is due: then `flush`.

        For the few rows a command's start queues, one transaction in the WAL without an fsync
        (synchronous=NORMAL; checkpoints run in the worker) costs less than the thread hop that
        `flush` takes, and it is on disk, as far as a crash of the daemon goes, all the same."""
        if self._writing() or self._commits >= CHECKPOINT_EVERY or self._full_since is not None:
            return False
        if not self._queue:
            return True
        if not self._lock.acquire(blocking=False):
            return False
        try:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            ops, self._queue = self._queue, []
            try:
                self._commit(ops)
            except Exception as exc:
                if not is_full_error(exc):
                    raise
                self._held(ops, exc)
                return False
        finally:
            self._lock.release()
        return True

    async def flush_soon(self) -> bool:
        """`flush_now` once per turn of the event loop, for every caller of this turn: the records
        of commands that start together (concurrent requests) go in one transaction. True once
        written; False as from `flush_now` (then `flush`)."""
        batch = self._batch
        if batch is None:
            loop = asyncio.get_running_loop()
            batch = self._batch = loop.create_future()
            loop.call_soon(self._flush_batch, batch)
        # Shielded: one caller cancelled must not cancel the others' wait.
        return await asyncio.shield(batch)

    def _flush_batch(self, batch: asyncio.Future[bool]) -> None:
        self._batch = None
        try:
            batch.set_result(self.flush_now())
        except Exception as exc:  # every caller of the turn sees the failure, as from flush_now
            batch.set_exception(exc)

    # --- the write queue ----------------------------------------------------------------------------

    def _queue_op(self, sql: str, args: tuple[Any, ...], delay: float | None) -> None:
        self._queue.append((sql, args))
        if self._full_since is not None:
            return  # the retry timer writes it once space returns
        if delay is not None and self._timer is None and not self._writing():
            self._timer = asyncio.get_running_loop().call_later(delay, self._start_writer)

    def _writing(self) -> bool:
        return self._writer is not None and not self._writer.done()

    def _start_writer(self) -> None:
        self._timer = None
        if not self._writing():
            self._writer = asyncio.get_running_loop().create_task(self._drain(), name="store-writer")

    async def _drain(self) -> None:
        while self._queue:
            ops, self._queue = self._queue, []
            try:
                await asyncio.to_thread(self._write_batch, ops)
            except Exception as exc:
                if not is_full_error(exc):
                    raise
                self._held(ops, exc)  # requests do not wait for it meanwhile
                return
            if self._full_since is not None:
                log.info("state_db_written", held_since=self._full_since)
                self._full_since, self._backoff = None, RETRY_FIRST
                await asyncio.to_thread(self._make_ballast)

    async def flush(self) -> None:
        """Wait until every queued write is on disk (while the disk is full: only until the
        attempt in progress failed; the writes stay queued for the retry)."""
        if self._full_since is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while (self._queue or self._writing()) and self._full_since is None:
            if not self._writing():
                self._writer = asyncio.get_running_loop().create_task(self._drain(), name="store-writer")
            assert self._writer is not None
            await asyncio.shield(self._writer)

    def save_soon(self, rec: CommandRecord, session: tuple[str, int, int] | None = None) -> None:
        """Queue a record (and session counters) for writing, off the caller's hot path."""
        self._queue_op(_SAVE_COMMAND, _row(rec), WRITE_DELAY)
        if session is not None:
            self._queue_op(_SAVE_SESSION, session, WRITE_DELAY)

    def save_session_soon(self, session_id: str, scan_pos: int, next_seq: int) -> None:
        self._queue_op(_SAVE_SESSION, (session_id, scan_pos, next_seq), WRITE_DELAY)

    # --- awaited writes and reads -----------------------------------------------------------------

    async def save_command(self, rec: CommandRecord) -> None:
        self._queue_op(_SAVE_COMMAND, _row(rec), None)
        await self.flush()

    async def save_session(self, session_id: str, scan_pos: int, next_seq: int) -> None:
        self._queue_op(_SAVE_SESSION, (session_id, scan_pos, next_seq), None)
        await self.flush()

    async def forget_command(self, session_id: str, command_id: str) -> None:
        sql = "DELETE FROM commands WHERE session_id=? AND command_id=?"
        self._queue_op(sql, (session_id, command_id), None)
        await self.flush()

    async def forget_session(self, session_id: str) -> None:
        self._queue_op("DELETE FROM commands WHERE session_id=?", (session_id,), None)
        self._queue_op("DELETE FROM sessions WHERE session_id=?", (session_id,), None)
        await self.flush()

    async def commands(self, session_id: str) -> list[CommandRecord]:
        await self.flush()
        rows = await asyncio.to_thread(
            self._exec,
            f"SELECT {', '.join(_COLUMNS)} FROM commands WHERE session_id=? ORDER BY seq",
            (session_id,),
        )
        return [CommandRecord(*row) for row in rows]

    async def load_session(self, session_id: str) -> tuple[int, int] | None:
        await self.flush()
        rows = await asyncio.to_thread(
            self._exec, "SELECT scan_pos, next_seq FROM sessions WHERE session_id=?", (session_id,)
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    # --- jobs (one JSON document per job; see daemon/sessions/jobs.py) ------------------------------

    async def save_job(self, job_id: str, session_id: str, data: str) -> None:
        self._queue_op(_SAVE_JOB, (job_id, session_id, data), None)
        await self.flush()

    async def jobs(self) -> list[str]:
        await self.flush()
        rows = await asyncio.to_thread(self._exec, "SELECT data FROM jobs ORDER BY rowid")
        return [str(r[0]) for r in rows]

    async def forget_job(self, job_id: str) -> None:
        self._queue_op("DELETE FROM jobs WHERE job_id=?", (job_id,), None)
        await self.flush()

    def _make_ballast(self) -> None:
        """Keep BALLAST bytes of the disk in a file of ours, given up only at shutdown on a full disk."""
        if self._ballast.exists():
            return
        try:
            fd = os.open(self._ballast, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, BALLAST)
        except OSError:  # no room (or no support): try again after the next full-disk recovery
            with contextlib.suppress(OSError):
                self._ballast.unlink()
        finally:
            os.close(fd)

    def close(self) -> None:
        if self._queue:
            # A last attempt for what a full disk held (the daemon is stopping: what is not written
            # now is lost); with no space, the ballast is given up for it.
            for attempt in range(2):
                try:
                    self._write_batch(self._queue)
                    self._queue = []
                    break
                except Exception as exc:
                    if attempt == 0 and is_full_error(exc) and self._ballast.exists():
                        self._ballast.unlink()
                        continue
                    log.warning("state_db_unsaved", writes=len(self._queue), error=str(exc))
                    break
        with self._lock:
            self._db.close()
