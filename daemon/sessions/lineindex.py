"""Paging a command's output without rendering (or holding) all of it.

A `LineIndex` maps rendered line numbers to log offsets at sparse points (every few MB, always at a
line start). Counting the lines of a chunk that ends with a line end needs no text at all when it
holds no escape sequence (rendering keeps every line end), else one render of that chunk. A page
is then rendered from the nearest point: a reply costs memory in the size of a chunk and what it
returns, never in the size of the output, and the index grows as the output does (each byte is
counted once).

Rendering is line-oriented (see `sshkeep.common.terminal.render`), so rendering chunks cut after a
line end gives the lines rendering the whole would. A single line longer than `MAX_LINE` is cut
into pieces of that size, each counted as a line.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sshkeep.common.terminal import markers as mk
from sshkeep.common.terminal.render import render, split_lines, strip_query_echo
from sshkeep.common.terminal.screenmode import NORMAL, strip_screens_from

# Small enough that no single step holds the GIL (and so the event loop) for long.
CHUNK = 1024 * 1024
MAX_LINE = 64 * CHUNK

Reader = Callable[[int, int], bytes]  # bytes [start, end) of the log


# Text the renderer would change beyond line ends: escapes, controls, BS.
_NEEDS_RENDER = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def render_lines(raw: bytes) -> list[str]:
    """`split_lines(render(strip_markers(raw)))`, without the renderer's escape stripping (one
    long C call holding the GIL) for plain text, where it would change nothing."""
    return render_lines_from(raw, NORMAL)[0]


def render_lines_from(raw: bytes, state: int) -> tuple[list[str], int]:
    """`render_lines` of a chunk of output that starts in screen `state` (see
    `screenmode.strip_screens_from`); returns its lines and the state it ends in."""
    # A full-screen program's frames are not output lines (its screen is replied separately).
    stripped, state = strip_screens_from(mk.strip_markers(raw), state)
    text = stripped.decode("utf-8", errors="replace")
    if _NEEDS_RENDER.search(text) is None:
        text = text.replace("\r\n", "\n")
        if "\r" not in text:
            return split_lines(strip_query_echo(text)), state
    return split_lines(strip_query_echo(render(stripped))), state


def count_lines(raw: bytes, state: int = NORMAL) -> tuple[int, int]:
    """Rendered lines in `raw` (which ends with a line end) that starts in screen `state`, and
    the state it ends in."""
    if state == NORMAL and b"\x1b" not in raw:  # nothing for the renderer to strip that could hold a line end
        return raw.count(b"\n"), NORMAL
    lines, state = render_lines_from(raw, state)
    return len(lines), state


@dataclass
class LineIndex:
    """Line numbers at points of one command's output: line `nums[i]` starts at byte `offs[i]`,
    where the output stands in screen state `states[i]` (inside a full-screen program's frames or not).

    `offs[-1]` is how far the index reaches (`end`, a line start); bytes after it (the unfinished
    last line of a running command) are rendered when asked for."""

    offs: list[int] = field(default_factory=list)
    nums: list[int] = field(default_factory=list)
    states: list[int] = field(default_factory=list)

    @classmethod
    def at(cls, start: int) -> LineIndex:
        return cls([start], [0], [NORMAL])

    @property
    def start(self) -> int:
        return self.offs[0]

    @property
    def end(self) -> int:
        return self.offs[-1]

    def extend(self, read: Reader, upto: int) -> None:
        """Index whole lines up to `upto`."""
        while self.end < upto:
            lo = self.end
            hi = min(upto, lo + CHUNK)
            raw = read(lo, hi)
            nl = raw.rfind(b"\n")
            while nl == -1 and hi < upto and hi - lo < MAX_LINE:
                more = min(upto, hi + CHUNK)
                raw += read(hi, more)
                hi = more
                nl = raw.rfind(b"\n")
            if nl == -1:
                if hi - lo < MAX_LINE:
                    return  # the last line is not finished yet
                nl = len(raw) - 1  # a line longer than MAX_LINE: cut it here
                lines, state = render_lines_from(raw, self.states[-1])
                count = len(lines)
            else:
                raw = raw[: nl + 1]
                count, state = count_lines(raw, self.states[-1])
            self.offs.append(lo + nl + 1)
            self.nums.append(self.nums[-1] + count)
            self.states.append(state)

    def rebase(self, read: Reader, start: int) -> None:
        """Make `start` (a line start after this index's start) line 0: the log cap dropped the
        lines before it."""
        if start <= self.start:
            return
        j = bisect.bisect_right(self.offs, start)
        # What was cut off is gone: the screen state at `start` is the one at the point before it.
        state = self.states[j - 1]
        if start >= self.end:
            self.offs, self.nums, self.states = [start], [0], [state]
            return
        # The bytes before `start` may be punched out already: count from `start` to the next
        # point instead, which is still there.
        shift = self.nums[j] - count_lines(read(start, self.offs[j]), state)[0]
        self.offs = [start, *self.offs[j:]]
        self.nums = [0, *(n - shift for n in self.nums[j:])]
        self.states = [state, *self.states[j:]]

    def total(self, read: Reader, upto: int) -> int:
        """Rendered lines in [start, upto) (the index must reach the last line end before `upto`)."""
        if upto <= self.end:
            return self.nums[-1]
        return self.nums[-1] + len(render_lines_from(read(self.end, upto), self.states[-1])[0])

    def lines(self, read: Reader, first: int, count: int, upto: int) -> list[str]:
        """Rendered lines [first, first + count) of [start, upto)."""
        out: list[str] = []
        if count <= 0:
            return out
        i = max(0, bisect.bisect_right(self.nums, first) - 1)
        skip = first - self.nums[i]
        while len(out) < count:
            lo = self.offs[i]
            hi = self.offs[i + 1] if i + 1 < len(self.offs) else upto
            if hi <= lo:
                break
            got = render_lines_from(read(lo, hi), self.states[i])[0]
            if skip < len(got):
                out.extend(got[skip : skip + count - len(out)])
                skip = 0
            else:
                skip -= len(got)
            if hi >= upto:
                break
            i += 1
        return out
