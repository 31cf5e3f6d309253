"""Full-screen output in a byte stream: what a screen-drawing program (vim, less, top) leaves in
a pipe-pane log is frames, not lines. Pure functions over raw terminal bytes.

- `drawn(raw)`: the bytes draw a screen (alternate screen, or repeated absolute cursor moves and
  screen erases, as `top` does without an alternate screen).
- `strip_screens(raw)`: the bytes without those frames, so a finished command's output is what it
  printed as lines, not every redraw.
"""

from __future__ import annotations

import re

_ALT_ON = re.compile(rb"\x1b\[\?(?:1049|1047|47)h")
_ALT_OFF = re.compile(rb"\x1b\[\?(?:1049|1047|47)l")
# Absolute cursor position (CSI row;col H / f), erase in display (CSI n J), scroll region (CSI t;b r).
_DRAW = re.compile(rb"\x1b\[[0-9]*(?:;[0-9]*)?[Hf]|\x1b\[[0-3]?J|\x1b\[[0-9]+;[0-9]+r")
# `clear` alone draws twice (home, erase): a screen program draws far more.
MIN_DRAWS = 6


def drawn(raw: bytes) -> bool:
    """Whether `raw` holds a full-screen program's drawing."""
    if _ALT_ON.search(raw):
        return True
    return len(_DRAW.findall(raw, 0)) >= MIN_DRAWS if b"\x1b[" in raw else False


def strip_screens(raw: bytes) -> bytes:
    """`raw` without alternate-screen sections and without the span of in-place redraws."""
    if b"\x1b[" not in raw:
        return raw
    out: list[bytes] = []
    pos = 0
    while True:
        on = _ALT_ON.search(raw, pos)
        if on is None:
            out.append(raw[pos:])
            break
        out.append(raw[pos : on.start()])
        off = _ALT_OFF.search(raw, on.end())
        if off is None:
            break  # still on the alternate screen: nothing of it is line output
        pos = off.end()
    text = b"".join(out)
    draws = list(_DRAW.finditer(text))
    if len(draws) < MIN_DRAWS:
        return text
    # Everything from the first absolute move to the last one is frames; keep what came before
    # and whatever line output followed the last frame.
    last = draws[-1].end()
    nl = text.find(b"\n", last)
    tail = text[nl + 1 :] if nl != -1 else b""
    return text[: draws[0].start()] + tail


def compact_screen(lines: list[str], max_lines: int, max_chars: int) -> tuple[str, int]:
    """A captured screen for a reply: trailing blank rows dropped, runs of one repeated row (vim's
    `~` rows) folded, cut to `max_lines`/`max_chars`. Returns (text, rows left out)."""
    rows = [line.rstrip() for line in lines]
    while rows and not rows[-1]:
        rows.pop()
    folded: list[str] = []
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1] == rows[i]:
            j += 1
        run = j - i + 1
        if run >= 3:
            folded.append(f"{rows[i]}  [×{run}]")
        else:
            folded.extend(rows[i : j + 1])
        i = j + 1
    kept: list[str] = []
    used = 0
    for row in folded:
        if len(kept) >= max_lines or used + len(row) + 1 > max_chars:
            break
        kept.append(row)
        used += len(row) + 1
    return "\n".join(kept), len(folded) - len(kept)
