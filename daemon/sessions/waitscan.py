"""wait_for's scan: new output searched in bounded chunks, off the event loop, within a time budget.

A chunk of at most `CHUNK` bytes is read, rendered and searched in a worker thread; the event loop
only hands chunks out, so a 300 MB backlog (`since=0`) never stalls other requests. The pattern
runs on the `regex` module (Python `re` syntax) for two of its properties: a `timeout` per call,
and `concurrent=True`, which releases the GIL while it matches. Python's own `re` has neither: one
catastrophic pattern (`(a|aa)+$` on a long line of `a`s) would backtrack for minutes holding the
GIL, and no thread or check between lines could interrupt it. A non-backtracking engine (RE2)
would bound every match too, but refuses backreferences and lookaround that agents do use; the
time budget keeps the full syntax and still bounds the work: every call gets what is left of
`BUDGET` seconds, and a wait whose pattern used it up ends, saying so.

Each chunk is first searched as one text (MULTILINE, so `^`/`$` still anchor at line ends), and
line by line only where that found something; patterns whose meaning depends on seeing one line
at a time (`\\A`, `\\Z`, lookbehind) skip that shortcut.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import regex

from sshkeep.common.errors import BadRequest
from sshkeep.daemon.sessions.lineindex import render_lines

CHUNK = 1024 * 1024  # small enough that no single step holds the GIL for long
BUDGET = 5.0  # seconds of regex work per wait_for call
CONTEXT = 3

Reader = Callable[[int, int], bytes]


class BudgetSpent(Exception):
    """The pattern used up the wait's regex time budget."""


@dataclass
class Pattern:
    """A compiled wait_for pattern and what is left of its time budget."""

    source: str
    line: regex.Pattern[str]
    text: regex.Pattern[str] | None
    deadline: float = 0.0

    @classmethod
    def compile(cls, pattern: str, budget: float = BUDGET) -> Pattern:
        try:
            line = regex.compile(pattern, regex.VERSION0)
            text = (
                None
                if any(tok in pattern for tok in ("\\A", "\\Z", "\\z", "(?<", "\\G"))
                else regex.compile(pattern, regex.VERSION0 | regex.MULTILINE)
            )
        except (regex.error, ValueError, OverflowError) as exc:
            raise BadRequest(f"pattern {pattern!r} is not a valid regular expression: {exc}") from exc
        return cls(pattern, line, text, time.monotonic() + budget)

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BudgetSpent
        return left

    def first_match(self, lines: list[str]) -> int | None:
        """Index of the first line that matches, or None (raises BudgetSpent)."""
        try:
            if self.text is not None:
                found = self.text.search("\n".join(lines), timeout=self._left(), concurrent=True)
                if found is None:
                    return None
            for i, line in enumerate(lines):
                if self.line.search(line, timeout=self._left(), concurrent=True) is not None:
                    return i
        except TimeoutError as exc:
            raise BudgetSpent from exc
        return None


@dataclass
class Hit:
    line: str
    context: str


def search_chunk(
    read: Reader, pattern: Pattern, start: int, end: int, carry: str
) -> tuple[Hit | None, int, str]:
    """Search rendered output [start, end) (at most CHUNK bytes of it), after `carry`, the
    unfinished line left by the chunk before. Returns a hit, where searching stopped and the
    carry for the next chunk. Runs in a worker thread."""
    stop = min(end, start + CHUNK)
    raw = read(start, stop)
    if stop < end:  # cut after a line end when there is one, so lines are whole
        nl = raw.rfind(b"\n")
        if nl != -1:
            raw = raw[: nl + 1]
            stop = start + nl + 1
    rendered = render_lines(raw)
    ends_line = raw.endswith(b"\n")
    lines = (
        [carry + rendered[0], *rendered[1:]] if rendered and carry else rendered or ([carry] if carry else [])
    )
    i = pattern.first_match(lines)
    next_carry = lines[-1] if lines and not ends_line else ""
    if i is None:
        return None, stop, next_carry
    context = "\n".join(lines[max(0, i - CONTEXT) : i + CONTEXT + 1])
    return Hit(lines[i], context), stop, next_carry
