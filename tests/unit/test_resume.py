"""After a daemon restart: a record whose keys never reached tmux is dropped, a typed command without
one is recorded from its typed mark's intent, every other followed."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from pathlib import Path

from sshkeep.daemon.sessions.resume import Intent, TypedMark, mark_value, parse_mark, resume
from sshkeep.daemon.sessions.session import Session
from sshkeep.daemon.sessions.store import CommandRecord, Store


def record(
    seq: int, status: str = "running", source: str = "agent", request_id: str | None = None
) -> CommandRecord:
    done = status != "running"
    return CommandRecord(
        session_id="s-1", command_id=f"c{seq}", seq=seq, command=f"echo {seq}", status=status,  # type: ignore[arg-type]
        exit_code=0 if done else None, sent_pos=100 * seq, skip_newlines=1, out_start=None,
        out_end=100 * seq + 50 if done else None, started_at=1.5, source=source, request_id=request_id,
    )  # fmt: skip


def session(tmp_path: Path) -> Session:
    return Session(
        id="s-1", pane_id="%1", target="host", connection=None, nonce="n", created_at=0.0,
        log_path=tmp_path / "s-1.log", attach="tmux attach",
    )  # fmt: skip


def resumed(
    tmp_path: Path, records: list[CommandRecord], typed: int | TypedMark | None
) -> tuple[Session, list[str]]:
    async def main() -> tuple[Session, list[str]]:
        store = Store(tmp_path / "db.sqlite")
        for r in records:
            store.save_soon(r, ("s-1", 900, 1))
        s = session(tmp_path)
        await resume(s, store, TypedMark(typed) if isinstance(typed, int) else typed)
        left = [r.command_id for r in await store.commands("s-1")]
        store.close()
        return s, left

    return asyncio.run(main())


def test_a_recorded_command_that_was_never_typed_is_dropped(tmp_path: Path) -> None:
    s, left = resumed(tmp_path, [record(1, "completed"), record(2, request_id="req-000002")], typed=1)
    assert left == ["c1"] and list(s.commands) == ["c1"]
    assert s.current is None and s.requests == {}
    assert s.next_seq == 3  # its id is never given to another command
    assert s.scan_pos == 900


def test_a_typed_command_is_followed_from_where_it_was_typed(tmp_path: Path) -> None:
    s, left = resumed(tmp_path, [record(1, "completed"), record(2, request_id="req-000002")], typed=2)
    assert left == ["c1", "c2"]
    assert s.current is not None and s.current.command_id == "c2"
    assert s.requests == {"req-000002": "c2"}
    assert s.scan_pos == 200  # its sent_pos: the scan finds its start and end again


def test_without_a_typed_mark_and_for_others_commands_records_are_trusted(tmp_path: Path) -> None:
    s, _ = resumed(tmp_path, [record(1, "completed"), record(2)], typed=None)
    assert s.current is not None and s.current.command_id == "c2"
    person = replace(record(2), source="person")  # seen in the log, never typed by sshkeep
    s, _ = resumed(tmp_path / "x", [person], typed=0)
    assert s.current is not None and s.current.command_id == "c2"


def test_a_typed_command_the_store_never_got_is_recorded_from_its_intent(tmp_path: Path) -> None:
    typed = record(2, request_id="req-000002")
    mark = parse_mark(mark_value(2, typed))
    assert mark == TypedMark(2, Intent.of(typed))
    s, left = resumed(tmp_path, [record(1, "completed")], typed=mark)
    assert left == ["c1", "c2"]  # in the store from now on
    assert s.current == typed  # followed from where it was typed, and found by its retry
    assert s.requests == {"req-000002": "c2"} and s.scan_pos == 200 and s.next_seq == 3


def test_a_stored_record_wins_over_the_intent_and_a_mark_alone_keeps_ids_unique(tmp_path: Path) -> None:
    stored = replace(record(2), status="completed", exit_code=0, out_end=250)
    s, left = resumed(tmp_path, [record(1, "completed"), stored], typed=TypedMark(2, Intent.of(record(2))))
    assert left == ["c1", "c2"] and s.commands["c2"] == stored and s.current is None
    s, left = resumed(tmp_path / "x", [record(1, "completed")], typed=5)  # no intent: nothing to record
    assert left == ["c1"] and s.next_seq == 6


def test_typed_mark_values_read_back() -> None:
    rec = replace(record(7, request_id="r-1"), command="echo '#{pane_id}' \"é\" \x1b ; \\")
    value = mark_value(7, rec)
    assert value.isascii() and value.isprintable() and "#" not in value
    mark = parse_mark(value)
    assert mark is not None and mark.intent is not None and mark.intent.record("s-1", 7) == rec
    assert parse_mark("7") == TypedMark(7)
    assert parse_mark("7 {not json") == TypedMark(7)  # typed all the same; nothing to record
    assert parse_mark("") is None and parse_mark("x 1") is None


def test_typed_mark_values_are_the_intents_json() -> None:
    # Written member by member on the command's path: the same text json.dumps gives for the
    # Intent (compact), whatever the command holds.
    commands = [
        "echo 1",
        "",
        'a"b\\c',
        "tab\tnl\nesc\x1bdel\x7f",
        "é ü 中 😀 \u2028",
        "#{pane_id} ##",
        "\ud800 lone",
    ]
    for n, command in enumerate(commands):
        for request_id in (None, f"req-{n}#x"):
            for started_at in (1.5, time.time(), 1e-7, 12345678901.0):
                rec = replace(record(n + 1, request_id=request_id), command=command, started_at=started_at)
                want = json.dumps(Intent.of(rec).model_dump(exclude_none=True), separators=(",", ":"))
                assert mark_value(n + 1, rec) == f"{n + 1} " + want.replace("#", "\\u0023")
