"""Typed at most once: a terminal's command records across a daemon restart.

The keys of a command go to tmux in one command line together with a pane option naming the
command's sequence number (`@sshkeep_typed`): tmux runs that line whole or not at all, and tmux
outlives the daemon. A pasted command (long, or of several lines) has its record written to the
store (awaited) before its keys are typed; a short one carries its record in the option itself
(the intent: where its output starts, its request id, its text) and is written to the store just
after its keys, while the shell runs it, so that the commit is off the command's round trip.

So a new daemon knows, for the one record that may be in doubt, what was typed: a stored record of
a command that never reached tmux is dropped (nothing ran; a retry types it), a typed command the
store has no record of is recorded from its intent, and every record is followed from its log
offset. Retries find their command by the caller's request id.
"""

from __future__ import annotations

from json.encoder import encode_basestring_ascii
from typing import NamedTuple

import structlog
from pydantic import BaseModel, ValidationError

from sshkeep.common.errors import TmuxError
from sshkeep.common.tmux import quote
from sshkeep.daemon.sessions.session import Session
from sshkeep.daemon.sessions.store import CommandRecord, Store
from sshkeep.daemon.sessions.tmux import Tmux

log = structlog.get_logger(__name__)

# Pane option: the sequence number of the last command sshkeep typed into the pane.
TYPED_OPT = "@sshkeep_typed"


class Intent(BaseModel):
    """What the store would hold of a typed command that carries its record in the typed mark."""

    command: str
    sent_pos: int
    skip_newlines: int
    started_at: float
    request_id: str | None = None

    @classmethod
    def of(cls, rec: CommandRecord) -> Intent:
        # The record's fields have their types already: nothing to validate on the command's path.
        return cls.model_construct(
            command=rec.command,
            sent_pos=rec.sent_pos,
            skip_newlines=rec.skip_newlines,
            started_at=rec.started_at,
            request_id=rec.request_id,
        )

    def record(self, key: str, seq: int) -> CommandRecord:
        return CommandRecord(
            session_id=key,
            command_id=f"c{seq}",
            seq=seq,
            command=self.command,
            status="running",
            exit_code=None,
            sent_pos=self.sent_pos,
            skip_newlines=self.skip_newlines,
            out_start=None,
            out_end=None,
            started_at=self.started_at,
            request_id=self.request_id,
        )


class TypedMark(NamedTuple):
    """A pane's typed mark: the last sequence number typed there, and that command's intent when
    the mark carries one."""

    seq: int
    intent: Intent | None = None


_INTENT_FIELDS = tuple(Intent.model_fields)


def mark_value(seq: int, rec: CommandRecord | None = None) -> str:
    """The typed mark's value: `seq`, and with `rec` its intent as JSON (see `Intent`).

    Printable ASCII only (control characters and non-ASCII text as JSON escapes), and no `#`,
    which only a format could ever take for anything: the value is read back as it was set. The
    JSON is written member by member as json.dumps writes these values (text through its own
    ASCII escaper, numbers as their repr): this runs for every command typed, and building an
    `Intent` to dump it took three times as long."""
    if rec is None:
        return str(seq)
    members = []
    for name in _INTENT_FIELDS:
        value = getattr(rec, name)
        if value is not None:
            text = encode_basestring_ascii(value) if isinstance(value, str) else repr(value)
            members.append(f'"{name}":{text}')
    return f"{seq} {{" + ",".join(members).replace("#", "\\u0023") + "}"


def typed_mark(pane_id: str, seq: int, rec: CommandRecord | None = None) -> str:
    """The tmux command (to lead the typing line) that records command `seq` as typed, and with
    `rec` the command's record too."""
    return f"set-option -p -t {pane_id} {TYPED_OPT} {quote(mark_value(seq, rec))}"


def parse_mark(value: str) -> TypedMark | None:
    """A typed mark's value as read back from tmux; None for none (or one no daemon wrote)."""
    seq, _, data = value.partition(" ")
    if not seq.isdigit():
        return None
    if not data:
        return TypedMark(int(seq))
    try:
        return TypedMark(int(seq), Intent.model_validate_json(data))
    except ValidationError:
        return TypedMark(int(seq))  # the keys were typed all the same: records before it stand


async def typed_marks(tmux: Tmux) -> dict[str, TypedMark]:
    """Pane id -> its typed mark, for every pane that has the option (a pane without it was set up
    by a daemon that did not keep it: its records are trusted)."""
    try:
        lines = await tmux.command(f"list-panes -a -F '#{{pane_id}}\t#{{{TYPED_OPT}}}'")
    except TmuxError as exc:
        log.warning("typed_marks_unread", error=exc.message)
        return {}
    marks: dict[str, TypedMark] = {}
    for line in lines:
        pane, _, value = line.partition("\t")
        mark = parse_mark(value)
        if mark is not None:
            marks[pane] = mark
    return marks


async def resume(s: Session, store: Store, mark: TypedMark | None) -> None:
    """Load `s`'s records from the store; follow the running one from where it was typed."""
    saved = await store.load_session(s.key)
    records = await store.commands(s.key)
    typed = mark.seq if mark is not None else None
    kept: list[CommandRecord] = []
    for r in records:
        if typed is not None and _untyped(r, typed):
            # Recorded, then the daemon died before tmux got the keys: it never ran.
            await store.forget_command(s.key, r.command_id)
            log.info("command_never_typed", session=s.key, command_id=r.command_id)
            continue
        kept.append(r)
    if mark is not None and mark.intent is not None and all(r.seq < mark.seq for r in kept):
        # Typed, then the daemon died before its record reached the store: record it now.
        rec = mark.intent.record(s.key, mark.seq)
        await store.save_command(rec)
        kept.append(rec)
        log.info("command_recorded_from_intent", session=s.key, command_id=rec.command_id)
    s.restore(kept, saved)
    # The id of a dropped record is never given to another command.
    s.next_seq = max([s.next_seq, *(r.seq + 1 for r in records), (typed or 0) + 1])


def _untyped(r: CommandRecord, typed: int) -> bool:
    return (
        r.source == "agent"
        and r.seq > typed
        and r.out_end is None
        and r.status in ("running", "waiting_input")
    )
