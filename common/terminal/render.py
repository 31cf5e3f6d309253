"""Render raw terminal bytes (a pipe-pane log of an ssh pty) into the plain text an agent reads.

Escape sequences are stripped; carriage returns, backspaces and the in-line cursor and erase
sequences are applied like a terminal's line buffer, so progress bars and line-editor echo
collapse to what was finally visible. Screen-level motion (cursor up, clear screen) is ignored:
the log is a stream, not a screen. Columns are counted in code points, not display cells.
"""

from __future__ import annotations

import re

# Sequences that end in a final byte or a terminator. String sequences (OSC, DCS, SOS, PM, APC)
# run to BEL / ST; an unterminated one at the end is dropped, as a terminal would still be
# inside it. Inside DCS, ESC ESC pairs are tmux passthrough escapes, not terminators.
_OSC = r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\|(?=\x1b)|\Z)"
_STRING = r"\x1b[PX^_](?:[^\x1b]|\x1b[^\\])*(?:\x1b\\|\Z)"
_NF = r"\x1b[ -/]+[0-~]"  # charset designations (ESC ( B, ESC ) 0) and other nF escapes
# ESC =, ESC 7, ESC M, ESC c … (finals 0x30-0x5A, 0x5C-0x7E: never ESC [), or a lone ESC
_TWO_BYTE = r"\x1b(?!\[)(?:[0-Z\\-~]|\Z)?"

# The CSI sequences the line buffer applies; every other CSI is stripped up front.
_LINE_CSI_FINALS = "@CDGKPX"
_CSI_OTHER = rf"\x1b\[(?![0-9;]*[{_LINE_CSI_FINALS}])[0-?]*[ -/]*(?:[@-~]|\Z)"
# C0 controls other than BS, TAB, LF, CR and ESC, plus DEL and C1 controls: invisible.
_CONTROLS = r"[\x00-\x07\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]+"

_STRIP_FOR_RENDER = re.compile("|".join((_CSI_OTHER, _OSC, _STRING, _NF, _TWO_BYTE, _CONTROLS)))
_CR_LF = re.compile(r"\r+\n")
_NEEDS_BUFFER = re.compile(r"[\r\x08\x1b]")
_LINE_CONTROL = re.compile(rf"(\x1b\[[0-9;]*[{_LINE_CSI_FINALS}]|\r|\x08)")


def render(raw: bytes) -> str:
    """Return the plain text of terminal output; ends with a newline iff its last line did."""
    text = _STRIP_FOR_RENDER.sub("", raw.decode("utf-8", errors="replace"))
    text = text.replace("\r\n", "\n")
    if "\r\n" in text:
        text = _CR_LF.sub("\n", text)
    lines = text.split("\n")
    if _NEEDS_BUFFER.search(text) is None:
        return "\n".join([line.rstrip(" ") for line in lines])
    search = _NEEDS_BUFFER.search
    return "\n".join([line.rstrip(" ") if search(line) is None else _render_line(line) for line in lines])


def split_lines(text: str) -> list[str]:
    """Split rendered text into lines; a final newline does not add an empty line."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


def _render_line(line: str) -> str:
    """Apply CR, BS and the in-line CSI sequences of one line to a line buffer."""
    if "\x1b" not in line and "\x08" not in line:
        buf = ""
        for segment in line.split("\r"):
            buf = segment + buf[len(segment) :]
        return buf.rstrip(" ")
    buf = ""
    col = 0
    parts = _LINE_CONTROL.split(line)
    for i, part in enumerate(parts):
        if i % 2 == 0:
            if not part:
                continue
            if "\x1b" in part:  # a malformed sequence the strip pass left behind
                part = part.replace("\x1b", "")
            if col > len(buf):
                buf += " " * (col - len(buf))
            end = col + len(part)
            buf = buf[:col] + part + buf[end:]
            col = end
        elif part == "\r":
            col = 0
        elif part == "\x08":
            col = max(col - 1, 0)
        else:
            buf, col = _apply_csi(buf, col, part[2:-1], part[-1])
    return buf.rstrip(" ")


def _apply_csi(buf: str, col: int, params: str, final: str) -> tuple[str, int]:
    """Apply one in-line CSI sequence; return the new buffer and cursor column."""
    first = params.split(";", 1)[0]
    arg = int(first) if first else 0
    count = max(arg, 1)
    if final == "C":
        return buf, col + count
    if final == "D":
        return buf, max(col - count, 0)
    if final == "G":
        return buf, count - 1
    if final == "K":
        if arg == 0:
            buf = buf[:col]
        elif arg == 1:
            buf = " " * min(col + 1, len(buf)) + buf[col + 1 :]
        elif arg == 2:
            buf = ""
    elif final == "P":
        buf = buf[:col] + buf[col + count :]
    elif final == "X":
        end = min(col + count, len(buf))
        if end > col:
            buf = buf[:col] + " " * (end - col) + buf[end:]
    elif final == "@" and col < len(buf):
        buf = buf[:col] + " " * count + buf[col:]
    return buf, col
