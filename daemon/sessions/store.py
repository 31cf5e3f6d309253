"""Command records in an embedded SQLite database (state dir, 0600).

Calls are small and run in a worker thread so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
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


class Store:
    """Thread-confined SQLite access behind async methods."""

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
        self._lock = threading.Lock()
        self._queue: deque[tuple[CommandRecord, tuple[str, int, int] | None]] = deque()
        self._writer: asyncio.Task[None] | None = None

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    async def save_command(self, rec: CommandRecord) -> None:
        row = asdict(rec)
        marks = ", ".join("?" * len(_COLUMNS))
        sql = f"INSERT OR REPLACE INTO commands ({', '.join(_COLUMNS)}) VALUES ({marks})"
        await asyncio.to_thread(self._exec, sql, tuple(row[c] for c in _COLUMNS))

    async def commands(self, session_id: str) -> list[CommandRecord]:
        rows = await asyncio.to_thread(
            self._exec,
            f"SELECT {', '.join(_COLUMNS)} FROM commands WHERE session_id=? ORDER BY seq",
            (session_id,),
        )
        return [CommandRecord(*row) for row in rows]

    async def save_session(self, session_id: str, scan_pos: int, next_seq: int) -> None:
        await asyncio.to_thread(
            self._exec,
            "INSERT OR REPLACE INTO sessions (session_id, scan_pos, next_seq) VALUES (?, ?, ?)",
            (session_id, scan_pos, next_seq),
        )

    async def load_session(self, session_id: str) -> tuple[int, int] | None:
        rows = await asyncio.to_thread(
            self._exec, "SELECT scan_pos, next_seq FROM sessions WHERE session_id=?", (session_id,)
        )
        return (int(rows[0][0]), int(rows[0][1])) if rows else None

    async def forget_session(self, session_id: str) -> None:
        def run() -> None:
            self._exec("DELETE FROM commands WHERE session_id=?", (session_id,))
            self._exec("DELETE FROM sessions WHERE session_id=?", (session_id,))

        await asyncio.to_thread(run)

    # --- jobs (one JSON document per job; see daemon/sessions/jobs.py) ------------------------------

    async def save_job(self, job_id: str, session_id: str, data: str) -> None:
        await asyncio.to_thread(
            self._exec,
            "INSERT OR REPLACE INTO jobs (job_id, session_id, data) VALUES (?, ?, ?)",
            (job_id, session_id, data),
        )

    async def jobs(self) -> list[str]:
        rows = await asyncio.to_thread(self._exec, "SELECT data FROM jobs ORDER BY rowid")
        return [str(r[0]) for r in rows]

    async def forget_job(self, job_id: str) -> None:
        await asyncio.to_thread(self._exec, "DELETE FROM jobs WHERE job_id=?", (job_id,))

    def save_soon(self, rec: CommandRecord, session: tuple[str, int, int] | None = None) -> None:
        """Queue a record (and session counters) for writing, off the caller's hot path.

        Writes happen in order in one background task; `flush()` waits for them.
        """
        self._queue.append((replace(rec), session))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while self._queue:
            rec, session = self._queue.popleft()
            await self.save_command(rec)
            if session is not None:
                await self.save_session(*session)

    async def flush(self) -> None:
        if self._writer is not None:
            await self._writer
        if self._queue:
            await self._drain()

    def close(self) -> None:
        with self._lock:
            self._db.close()
