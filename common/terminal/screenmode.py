"""Full-screen output in a byte stream: what a screen-drawing program (vim, less, top) leaves in
a pipe-pane log is frames, not lines. Pure functions over raw terminal bytes.

- `drawn(raw)`: the bytes draw a screen (alternate screen, or repeated absolute cursor moves and
  screen erases, as `top` does without an alternate screen).
- `strip_screens(raw)`: the bytes without those frames, so a finished command's output is what it
  printed as lines, not every redraw; `strip_screens_from(raw, state)` does it chunk by chunk.
"""

from __future__ import annotations

import re

_ALT_ON = re.compile(rb"\x1b\[\?(?:1049|1047|47)h")
_ALT_OFF = re.compile(rb"\x1b\[\?(?:1049|1047|47)l")
# Absolute cursor position (CSI row;col H / f), erase in display (CSI n J), scroll region (CSI t;b r).
_DRAW = re.compile(rb"\x1b\[[0-9]*(?:;[0-9]*)?[Hf]|\x1b\[[0-3]?J|\x1b\[[0-9]+;[0-9]+r")
_ABSOLUTE = re.compile(rb"\x1b\[[0-9]*(?:;[0-9]*)?[Hf]")
# Application cursor/keypad mode: set by full-screen programs (top, less) as they start, never by
# `clear` or a progress bar.
_KEYPAD = re.compile(rb"\x1b\[\?1h|\x1b=")
_KEYPAD_OFF = re.compile(rb"\x1b\[\?1l|\x1b>")
# `clear` alone draws twice (home, erase): without keypad mode, a screen program draws far more.
MIN_DRAWS = 6


def _screen_program(text: bytes, draws: int) -> bool:
    """Absolute cursor moves make a screen: a line editor (zsh's zle sets keypad mode and erases
    below the prompt at every prompt) only moves relatively."""
    absolute = len(_ABSOLUTE.findall(text))
    if absolute >= MIN_DRAWS:
        return True
    return absolute >= 1 and draws >= 2 and _KEYPAD.search(text) is not None


def drawn(raw: bytes) -> bool:
    """Whether `raw` holds a full-screen program's drawing."""
    if _ALT_ON.search(raw):
        return True
    return _screen_program(raw, len(_DRAW.findall(raw))) if b"\x1b[" in raw else False


# Where a stream of output stands when a chunk of it ends: on the normal screen, inside an
# alternate-screen section, or inside a screen program that set keypad mode (top) and has not
# reset it. Output rendered in chunks (the line index, searches) carries it from one to the next.
NORMAL, ALTERNATE, KEYPAD = 0, 1, 2


def strip_screens(raw: bytes) -> bytes:
    """`raw` without alternate-screen sections and without the span of in-place redraws."""
    return strip_screens_from(raw, NORMAL)[0]


def strip_screens_from(raw: bytes, state: int) -> tuple[bytes, int]:
    """`strip_screens` of a chunk that starts in `state`; returns the kept bytes and the state
    the chunk ends in, for the chunk after it."""
    if state == NORMAL and b"\x1b[" not in raw:
        return raw, NORMAL
    pos = 0
    if state == ALTERNATE:
        off = _ALT_OFF.search(raw)
        if off is None:
            return b"", ALTERNATE
        pos, state = off.end(), NORMAL
    out: list[bytes] = []
    end_state = NORMAL
    while True:
        on = _ALT_ON.search(raw, pos)
        if on is None:
            out.append(raw[pos:])
            break
        out.append(raw[pos : on.start()])
        off = _ALT_OFF.search(raw, on.end())
        if off is None:
            end_state = ALTERNATE  # still on the alternate screen: nothing of it is line output
            break
        pos = off.end()
    text = b"".join(out)
    if state == KEYPAD:
        # Frames of a screen program started in an earlier chunk: they end where it resets
        # keypad mode (and its last cursor move after that).
        offs = list(_KEYPAD_OFF.finditer(text))
        if not offs:
            return b"", KEYPAD
        text = _after_frames(text, offs[-1].end())
    kept, drawing = _strip_redraws(text)
    return kept, end_state if end_state == ALTERNATE else (KEYPAD if drawing else NORMAL)


def _after_frames(text: bytes, frames_end: int) -> bytes:
    """What follows frames that end at `frames_end` (or at a cursor move after it): line output
    from the next line on."""
    moves = list(_DRAW.finditer(text, frames_end))
    last = max(frames_end, moves[-1].end()) if moves else frames_end
    nl = text.find(b"\n", last)
    return text[nl + 1 :] if nl != -1 else b""


def _strip_redraws(text: bytes) -> tuple[bytes, bool]:
    """`text` without the span of in-place redraws; True when a keypad screen program is still
    drawing at its end."""
    draws = list(_DRAW.finditer(text))
    if not _screen_program(text, len(draws)):
        return text, False
    # Everything from the first absolute move on is frames. A program that set keypad mode is done
    # drawing once it resets it (top does on quit); otherwise the frames end with the last move.
    # Line output after that (and its line end) is kept.
    keypad = _KEYPAD.search(text)
    head = text[: min(draws[0].start(), keypad.start() if keypad is not None else len(text))]
    if keypad is not None:
        offs = list(_KEYPAD_OFF.finditer(text, draws[0].start()))
        if not offs:
            return head, True
        return head + _after_frames(text, offs[-1].end()), False
    nl = text.find(b"\n", draws[-1].end())
    return head + (text[nl + 1 :] if nl != -1 else b""), False


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
