"""Search over commands' durable output: one regex, every matching line with context, one reply.

The output is read from the session log in bounded chunks (cut at line ends) in a worker thread,
rendered chunk by chunk exactly as get_command renders it (`lineindex.render_lines`: line numbers
are get_command offsets),
and searched there, so a 300 MB log never blocks the event loop nor sits whole in memory.

Regex work is bounded by the `regex` module's per-call `timeout`: every search call gets what is
left of one per-search time budget. A check between lines alone could not stop one catastrophic
match (`^(a|a?)+$` against a long line backtracks for ages inside a single call); the timeout
stops it inside the call. `concurrent=True` lets the matcher release the GIL, so the event loop
keeps running while a search works.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import regex

from sshkeep.common.errors import BadRequest
from sshkeep.common.models.sessions import SearchMatch, SearchRequest, SearchResult
from sshkeep.common.terminal.screenmode import NORMAL
from sshkeep.daemon.sessions.lineindex import render_lines_from

if TYPE_CHECKING:
    from sshkeep.daemon.sessions.session import Session
    from sshkeep.daemon.sessions.store import CommandRecord

CHUNK_BYTES = 1024 * 1024
BUDGET_SECONDS = 5.0
MAX_LINE_CHARS = 400
# Whole-chunk prefiltering is only sound for patterns whose per-line matches also match inside
# the chunk; lookarounds, inline flags and absolute anchors may not.
_NO_PREFILTER = ("(?", "\\A", "\\Z", "\\z", "\\G")


@dataclass
class _Scan:
    """What one search has found so far, across the commands it looks at."""

    pattern: regex.Pattern[str]
    prefilter: regex.Pattern[str] | None
    context: int
    max_matches: int
    deadline: float
    total: int = 0
    lines: int = 0
    complete: bool = True
    matches: list[SearchMatch] = field(default_factory=list)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()


def _clip(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "…"


def _search_chunk_lines(scan: _Scan, cid: str, lines: list[str], first: int, state: _LineState) -> bool:
    """Search rendered lines numbered from `first`; False when the time budget ran out."""
    for i, line in enumerate(lines):
        for m in state.waiting:
            if len(m.after) < scan.context:
                m.after.append(_clip(line))
        state.waiting = [m for m in state.waiting if len(m.after) < scan.context]
        left = scan.remaining()
        if left <= 0:
            return False
        try:
            hit = scan.pattern.search(line, timeout=left, concurrent=True) is not None
        except TimeoutError:
            return False
        if hit:
            scan.total += 1
            if len(scan.matches) < scan.max_matches:
                m = SearchMatch(command_id=cid, line=first + i, text=_clip(line), before=list(state.recent))
                scan.matches.append(m)
                if scan.context:
                    state.waiting.append(m)
        if scan.context:
            state.recent.append(_clip(line))
    return True


@dataclass
class _LineState:
    recent: deque[str]
    waiting: list[SearchMatch] = field(default_factory=list)


def search_range(scan: _Scan, cid: str, path: Path, start: int, end: int) -> None:
    """Search the output bytes [start, end) of one command (runs in a worker thread)."""
    state = _LineState(recent=deque(maxlen=max(scan.context, 1)))
    line_no = 0
    carry = b""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below; the thread owns it
    except FileNotFoundError:
        return
    with f:
        f.seek(start)
        pos = start
        screen = NORMAL  # a full-screen program's frames may span chunks
        while True:
            want = min(CHUNK_BYTES, end - pos)
            data = f.read(want) if want > 0 else b""
            pos += len(data)
            at_end = pos >= end or not data
            buf = carry + data
            carry = b""
            if not at_end:
                # Cut at a line end, so chunks render exactly as the whole output would.
                cut = buf.rfind(b"\n")
                if cut == -1 and len(buf) < 4 * CHUNK_BYTES:
                    carry = buf
                    continue
                cut = cut + 1 if cut != -1 else len(buf)
                buf, carry = buf[:cut], buf[cut:]
            if buf:
                lines, screen = render_lines_from(buf, screen)
                if not _chunk_may_match(scan, lines):
                    if scan.remaining() <= 0:
                        scan.complete = False
                        return
                    _skip_lines(scan, state, lines)
                elif not _search_chunk_lines(scan, cid, lines, line_no, state):
                    scan.complete = False
                    return
                scan.lines += len(lines)
                line_no += len(lines)
            if at_end:
                return


def _chunk_may_match(scan: _Scan, lines: list[str]) -> bool:
    if scan.prefilter is None:
        return True
    left = scan.remaining()
    if left <= 0:
        return False
    try:
        return scan.prefilter.search("\n".join(lines), timeout=left, concurrent=True) is not None
    except TimeoutError:
        scan.deadline = 0.0  # out of budget: the caller reports the search incomplete
        return False


def _skip_lines(scan: _Scan, state: _LineState, lines: list[str]) -> None:
    """A chunk without a match still gives earlier matches their after-lines, later ones their before."""
    if not scan.context:
        return
    for line in lines[: scan.context]:
        for m in state.waiting:
            if len(m.after) < scan.context:
                m.after.append(_clip(line))
    state.waiting = [m for m in state.waiting if len(m.after) < scan.context]
    for line in lines[-scan.context :]:
        state.recent.append(_clip(line))


def compile_pattern(pattern: str, ignore_case: bool) -> tuple[regex.Pattern[str], regex.Pattern[str] | None]:
    flags = regex.IGNORECASE if ignore_case else 0
    try:
        compiled = regex.compile(pattern, flags | regex.VERSION0)
        prefilter = (
            None
            if any(token in pattern for token in _NO_PREFILTER)
            else regex.compile(pattern, flags | regex.VERSION0 | regex.MULTILINE)
        )
    except regex.error as exc:
        raise BadRequest(
            f"pattern {pattern!r} is not a valid regular expression: {exc}",
            hint="Escape special characters (e.g. \\. \\( \\[) or search for a plain word.",
        ) from exc
    return compiled, prefilter


async def search_output(
    s: Session, records: list[CommandRecord], req: SearchRequest, budget: float = BUDGET_SECONDS
) -> SearchResult:
    """Search the output of `records` (in order) for `req.pattern`."""
    compiled, prefilter = compile_pattern(req.pattern, req.ignore_case)
    scan = _Scan(
        pattern=compiled,
        prefilter=prefilter,
        context=req.context,
        max_matches=req.max_matches,
        deadline=time.monotonic() + budget,
    )
    stopped_in: str | None = None
    for rec in records:
        start = s.kept_start(rec)
        end = rec.out_end if rec.out_end is not None else s._safe_end()
        if end <= start:
            continue
        await asyncio.to_thread(search_range, scan, rec.command_id, s.log_path, start, end)
        if not scan.complete:
            stopped_in = rec.command_id
            break
    where = ", ".join(r.command_id for r in records[:5]) + ("…" if len(records) > 5 else "")
    if not scan.complete:
        hint = (
            f"The {budget:g} s search budget ran out in {stopped_in} after {scan.lines} lines: use a "
            "simpler pattern (no nested repetition) or search one command (command_id)."
        )
    elif scan.total == 0:
        hint = f"No line of {where or 'any command'} matches; {scan.lines} lines searched."
    elif scan.total > len(scan.matches):
        first = scan.matches[0]
        hint = (
            f"{scan.total} matching lines, {len(scan.matches)} shown: raise max_matches or narrow the "
            f"pattern; get_command(command_id={first.command_id!r}, offset={first.line}) pages from there."
        )
    else:
        first = scan.matches[0]
        hint = f"get_command(command_id={first.command_id!r}, offset={first.line}) pages from there."
    return SearchResult(
        session_id=s.id,
        pattern=req.pattern,
        total_matches=scan.total,
        matches=scan.matches,
        lines_searched=scan.lines,
        complete=scan.complete,
        hint=hint,
    )
