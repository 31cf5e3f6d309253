"""Prompt cycles sshkeep did not start (a person's, the agent's keys) become records whose command
is what was typed, without the prompt, in any chunking of the log: also when a person typed the
next line ahead (the terminal echoes it before the shell prints its prompt)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sshkeep.daemon.sessions.session import Session

NONCE = "ab" * 8
PROMPT = b"\x1b[?2004h\x1b[01;32mu@h\x1b[00m:\x1b[01;34m~\x1b[00m$ "


def _d(status: int, seq: int) -> bytes:
    return b"\x1b]133;D;%d;sk=%s:%d\x07" % (status, NONCE.encode(), seq)


C = b"\x1b]133;C;sk=" + NONCE.encode() + b"\x07"
LOG = (
    _d(0, 4) + PROMPT
    + b"echo one\r\n\x1b[?2004l\r" + C + b"one\r\n" + _d(0, 5)
    + b"false"  # typed ahead while `echo one` ran: echoed before the next prompt
    + PROMPT + b"false\r\n\x1b[?2004l\r" + C + _d(1, 6) + PROMPT
)  # fmt: skip


async def _records(tmp_path: Path, pieces: list[bytes]) -> list[tuple[str, int | None]]:
    log = tmp_path / "s.log"
    log.write_bytes(b"")
    s = Session(
        id="s-1", pane_id="%1", target="t", connection=None, nonce=NONCE, created_at=0.0,
        log_path=log, attach="", shell="bash", integrated=True, x_seen=True,
    )  # fmt: skip
    for piece in pieces:
        with log.open("ab") as f:
            f.write(piece)
        await s.scan()
    s.close_log()
    return [(r.command, r.exit_code) for r in sorted(s.commands.values(), key=lambda r: r.seq)]


def test_typed_commands_in_every_chunking(tmp_path: Path) -> None:
    first = len(_d(0, 4) + PROMPT)  # the first prompt shows alone, as at an idle session
    for cut in range(first, len(LOG) + 1):
        got = asyncio.run(_records(tmp_path, [LOG[:first], LOG[first:cut], LOG[cut:]]))
        assert got == [("echo one", 0), ("false", 1)], cut
