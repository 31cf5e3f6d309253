"""Typed at most once: a terminal's command records across a daemon restart.

`send_command` writes a command's record to the store (awaited) before typing it, and the keys go
to tmux in one command line together with a pane option naming the command's sequence number
(`@sshkeep_typed`): tmux runs that line whole or not at all, and tmux outlives the daemon. So a
new daemon knows, for the one record that may be in doubt, whether its keys were typed: the record
of a command that never reached tmux is dropped (nothing ran; a retry types it), every other one
is followed from its log offset. Retries find their command by the caller's request id.
"""

from __future__ import annotations

import structlog

from sshkeep.common.errors import TmuxError
from sshkeep.daemon.sessions.session import Session
from sshkeep.daemon.sessions.store import CommandRecord, Store
from sshkeep.daemon.sessions.tmux import Tmux

log = structlog.get_logger(__name__)

# Pane option: the sequence number of the last command sshkeep typed into the pane.
TYPED_OPT = "@sshkeep_typed"


def typed_mark(pane_id: str, seq: int) -> str:
    """The tmux command (to lead the typing line) that records command `seq` as typed."""
    return f"set-option -p -t {pane_id} {TYPED_OPT} {seq}"


async def typed_marks(tmux: Tmux) -> dict[str, int]:
    """Pane id -> the last sequence number typed there, for every pane that has the option
    (a pane without it was set up by a daemon that did not keep it: its records are trusted)."""
    try:
        lines = await tmux.command(f"list-panes -a -F '#{{pane_id}}\t#{{{TYPED_OPT}}}'")
    except TmuxError as exc:
        log.warning("typed_marks_unread", error=exc.message)
        return {}
    marks: dict[str, int] = {}
    for line in lines:
        pane, _, value = line.partition("\t")
        if value.isdigit():
            marks[pane] = int(value)
    return marks


async def resume(s: Session, store: Store, typed: int | None) -> None:
    """Load `s`'s records from the store; follow the running one from where it was typed."""
    saved = await store.load_session(s.key)
    records = await store.commands(s.key)
    kept: list[CommandRecord] = []
    for r in records:
        if typed is not None and _untyped(r, typed):
            # Recorded, then the daemon died before tmux got the keys: it never ran.
            await store.forget_command(s.key, r.command_id)
            log.info("command_never_typed", session=s.key, command_id=r.command_id)
            continue
        kept.append(r)
    s.restore(kept, saved)
    # The id of a dropped record is never given to another command.
    s.next_seq = max([s.next_seq, *(r.seq + 1 for r in records)])


def _untyped(r: CommandRecord, typed: int) -> bool:
    return (
        r.source == "agent"
        and r.seq > typed
        and r.out_end is None
        and r.status in ("running", "waiting_input")
    )
