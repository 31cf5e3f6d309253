"""Command records in an embedded SQLite database (state dir, 0600).

Calls are small and run in a worker thread so the event loop never waits on the disk; writes are
queued and batched (see `Store`), so a command costs no database work while its reply is built.
"""

from __future__ import annotations

import asyncio
import operator
import os
import sqlite3
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from sshkeep.common.models.base import CommandStatus
from sshkeep.common.models.sessions import CommandSummary

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

    def summary(self) -> CommandSummary:
        source = self.source if self.source in ("keys", "person") else "agent"
        return CommandSummary(
            command_id=self.command_id,
            command=self.command,
            source=source,  # type: ignore[arg-type]
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
_SAVE_COMMAND = (
    f"INSERT OR REPLACE INTO commands ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)
_SAVE_SESSION = "INSERT OR REPLACE INTO sessions (session_id, scan_pos, next_seq) VALUES (?, ?, ?)"


_values = operator.attrgetter(*_COLUMNS)


def _row(rec: CommandRecord) -> tuple[Any, ...]:
    """The record's values now, in column order (the record itself keeps changing)."""
    return tuple(_values(rec))


class Store:
    """Thread-confined SQLite access behind async methods.

    Every write goes through one ordered queue, written by one worker-thread call per batch in one
    transaction: `save_soon` queues without waiting (the batch goes out `WRITE_DELAY` later, off
    the request's path); the awaited methods queue and wait until their batch is on disk. Reads
    wait for the queue first, so they see every write made before them.
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
        self._lock = threading.Lock()
        self._queue: list[_Op] = []
        self._writer: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def _write_batch(self, ops: list[_Op]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for sql, args in ops:
                    self._db.execute(sql, args)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- the write queue ----------------------------------------------------------------------------

    def _queue_op(self, sql: str, args: tuple[Any, ...], delay: float | None) -> None:
        self._queue.append((sql, args))
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
            await asyncio.to_thread(self._write_batch, ops)

    async def flush(self) -> None:
        """Wait until every queued write is on disk."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue or self._writing():
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
        self._queue_op(
            "INSERT OR REPLACE INTO jobs (job_id, session_id, data) VALUES (?, ?, ?)",
            (job_id, session_id, data),
            None,
        )
        await self.flush()

    async def jobs(self) -> list[str]:
        await self.flush()
        rows = await asyncio.to_thread(self._exec, "SELECT data FROM jobs ORDER BY rowid")
        return [str(r[0]) for r in rows]

    async def forget_job(self, job_id: str) -> None:
        self._queue_op("DELETE FROM jobs WHERE job_id=?", (job_id,), None)
        await self.flush()

    def close(self) -> None:
        with self._lock:
            self._db.close()
