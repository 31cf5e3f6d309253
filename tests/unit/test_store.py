"""Command records: queued writes land in order, reads see every write made before them."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path

from sshkeep.daemon.sessions.store import CommandRecord, Store


def record(cid: str, status: str = "running", out_end: int | None = None) -> CommandRecord:
    return CommandRecord(
        session_id="s-1", command_id=cid, seq=int(cid[1:]), command=f"echo {cid}", status=status,  # type: ignore[arg-type]
        exit_code=None if out_end is None else 0, sent_pos=10, skip_newlines=1, out_start=None,
        out_end=out_end, started_at=1.5,
    )  # fmt: skip


def test_queued_writes_keep_the_state_at_queue_time_and_reads_wait_for_them(tmp_path: Path) -> None:
    async def main() -> None:
        store = Store(tmp_path / "db.sqlite")
        rec = record("c1")
        store.save_soon(rec, ("s-1", 0, 2))
        rec.status, rec.out_end, rec.exit_code = "completed", 99, 0  # changed after it was queued
        saved = await store.commands("s-1")
        assert saved == [record("c1")]  # the queued snapshot, not the live object
        store.save_soon(rec, ("s-1", 120, 2))
        store.save_soon(record("c2"), ("s-1", 130, 3))
        done = replace(record("c1"), status="completed", out_end=99, exit_code=0)
        assert await store.commands("s-1") == [done, record("c2")]
        assert await store.load_session("s-1") == (130, 3)
        store.close()

    asyncio.run(main())


def test_forget_after_queued_writes_leaves_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        store = Store(tmp_path / "db.sqlite")
        store.save_soon(record("c1"), ("s-1", 0, 2))
        store.save_session_soon("s-1", 5, 2)
        await store.forget_session("s-1")
        assert await store.commands("s-1") == []
        assert await store.load_session("s-1") is None
        store.close()

    asyncio.run(main())


def test_flush_writes_a_batch_and_a_new_store_reads_it(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"

    async def write() -> None:
        store = Store(db)
        for i in range(1, 201):
            store.save_soon(record(f"c{i}", "completed", 100 + i), ("s-1", 100 + i, i + 1))
        await store.save_command(record("c201"))  # an awaited write waits for everything before it
        store.close()

    async def read() -> None:
        store = Store(db)
        rows = await store.commands("s-1")
        assert [r.command_id for r in rows] == [f"c{i}" for i in range(1, 202)]
        assert await store.load_session("s-1") == (300, 201)
        store.close()

    asyncio.run(write())
    asyncio.run(read())


def test_a_database_from_before_request_ids_gains_the_column(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite"
    old = sqlite3.connect(db)
    old.executescript(
        "CREATE TABLE commands (session_id TEXT NOT NULL, command_id TEXT NOT NULL, seq INTEGER NOT NULL,"
        " command TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER, sent_pos INTEGER NOT NULL,"
        " skip_newlines INTEGER NOT NULL, out_start INTEGER, out_end INTEGER, started_at REAL NOT NULL,"
        " ended_at REAL, source TEXT NOT NULL DEFAULT 'agent', PRIMARY KEY (session_id, command_id));"
        "INSERT INTO commands VALUES ('s-1', 'c1', 1, 'echo c1', 'running', NULL, 10, 1, NULL, NULL, 1.5,"
        " NULL, 'agent');"
    )
    old.close()

    async def main() -> None:
        store = Store(db)
        keyed = replace(record("c2"), request_id="0123456789abcdef")
        await store.save_command(keyed)
        assert await store.commands("s-1") == [record("c1"), keyed]
        await store.forget_command("s-1", "c1")
        assert await store.commands("s-1") == [keyed]
        store.close()

    asyncio.run(main())
