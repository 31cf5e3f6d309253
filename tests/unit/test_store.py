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


def test_a_batch_writes_each_row_once_with_its_last_values(tmp_path: Path) -> None:
    """A command saved as it starts and as it ends, and the session's counters saved after every
    command, leave one write per row in the batch, and the same rows as writing every one."""
    from sshkeep.daemon.sessions.store import _SAVE_COMMAND, _SAVE_SESSION, _row, coalesce

    ops = []
    for i in range(1, 4):
        ops.append((_SAVE_COMMAND, _row(record(f"c{i}"))))
        ops.append((_SAVE_SESSION, ("s-1", 10 * i, i + 1)))
        ops.append((_SAVE_COMMAND, _row(record(f"c{i}", "completed", 50 + i))))
        ops.append((_SAVE_SESSION, ("s-1", 10 * i + 5, i + 1)))
    thin = coalesce(ops)
    assert thin == [
        (_SAVE_COMMAND, _row(record("c1", "completed", 51))),
        (_SAVE_COMMAND, _row(record("c2", "completed", 52))),
        (_SAVE_COMMAND, _row(record("c3", "completed", 53))),
        (_SAVE_SESSION, ("s-1", 35, 4)),
    ]
    other = [*ops[:2], ("DELETE FROM commands WHERE session_id=?", ("s-1",)), *ops[2:]]
    assert coalesce(other) == other  # another statement: the batch is written as queued

    async def main(name: str, queued: bool) -> tuple[object, object]:
        store = Store(tmp_path / name)
        for sql, args in ops:
            if queued:
                store._queue_op(sql, args, 0.05)
            else:  # every statement, one by one, as written before batches were thinned
                store._exec(sql, args)
        rows, session = await store.commands("s-1"), await store.load_session("s-1")
        store.close()
        return rows, session

    every = asyncio.run(main("every.sqlite", queued=False))
    assert asyncio.run(main("batched.sqlite", queued=True)) == every
    assert every[1] == (35, 4)


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


def test_flush_now_writes_the_queue_unless_the_worker_holds_the_database(tmp_path: Path) -> None:
    async def main() -> None:
        store = Store(tmp_path / "db.sqlite")
        store.save_soon(record("c1"), ("s-1", 5, 2))
        assert store.flush_now()
        assert store._queue == [] and store._timer is None
        other = Store(tmp_path / "db.sqlite")  # another connection sees it committed
        assert await other.commands("s-1") == [record("c1")]
        other.close()
        store.save_soon(record("c2"), ("s-1", 9, 3))
        with store._lock:  # the worker is writing or reading: nothing is written here
            assert not store.flush_now()
        assert len(store._queue) == 2
        await store.flush()
        assert await store.commands("s-1") == [record("c1"), record("c2")]
        assert await store.load_session("s-1") == (9, 3)
        store.close()

    asyncio.run(main())


def test_checkpoints_run_in_the_worker(tmp_path: Path) -> None:
    from sshkeep.daemon.sessions import store as store_module

    async def main() -> None:
        store = Store(tmp_path / "db.sqlite")
        for i in range(1, store_module.CHECKPOINT_EVERY + 1):
            store.save_soon(record(f"c{i}"), ("s-1", i, i + 1))
            assert store.flush_now()
        store.save_soon(record("c0"))
        assert not store.flush_now()  # a checkpoint is due: the worker writes (and checkpoints)
        await store.flush()
        assert store._commits == 0
        assert len(await store.commands("s-1")) == store_module.CHECKPOINT_EVERY + 1
        store.close()

    asyncio.run(main())


def test_flush_soon_commits_the_records_of_one_loop_turn_together(tmp_path: Path) -> None:
    async def start(store: Store, cid: str) -> bool:
        store.save_soon(record(cid), ("s-1", 5, int(cid[1:]) + 1))
        return await store.flush_soon()

    async def main() -> None:
        store = Store(tmp_path / "db.sqlite")
        before = store._commits
        assert await asyncio.gather(start(store, "c1"), start(store, "c2"), start(store, "c3")) == [True] * 3
        assert store._commits == before + 1  # one transaction for the three
        other = Store(tmp_path / "db.sqlite")  # committed, as flush_now would have
        assert await other.commands("s-1") == [record("c1"), record("c2"), record("c3")]
        assert await other.load_session("s-1") == (5, 4)
        other.close()
        # A caller cancelled while waiting leaves the others' commit alone.
        store.save_soon(record("c4"))
        first = asyncio.ensure_future(store.flush_soon())
        second = asyncio.ensure_future(store.flush_soon())
        await asyncio.sleep(0)
        first.cancel()
        assert await second
        assert [r.command_id for r in await store.commands("s-1")] == ["c1", "c2", "c3", "c4"]
        store.close()

    asyncio.run(main())
