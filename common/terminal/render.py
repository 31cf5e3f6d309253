"""Render raw terminal bytes (a pipe-pane log of an ssh pty) into the plain text an agent reads.

Escape sequences are stripped; carriage returns, backspaces, cursor save/restore (`ESC 7`/`ESC 8`,
`CSI s`/`CSI u`) and the in-line cursor and erase sequences are applied like a terminal's line
buffer, so progress bars and line-editor echo collapse to what was finally visible. Screen-level
motion (cursor up, clear screen) is ignored: the log is a stream, not a screen.

Columns are screen cells: wide East Asian characters and most emoji take two, combining marks
and other zero-width characters none (they join the character before them). Spaces the program
printed are kept, trailing ones too; only the blanks the terminal itself made (cursor moved past
the end of the text, erased or inserted cells) are dropped at the end of a line.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Sequences that end in a final byte or a terminator. String sequences (OSC, DCS, SOS, PM, APC)
# run to BEL / ST; an unterminated one at the end is dropped, as a terminal would still be
# inside it. Inside DCS, ESC ESC pairs are tmux passthrough escapes, not terminators.
_OSC = r"\x1b\][^\x07\x1b]*(?:\x07|\x1b\\|(?=\x1b)|\Z)"
_STRING = r"\x1b[PX^_](?:[^\x1b]|\x1b[^\\])*(?:\x1b\\|\Z)"
_NF = r"\x1b[ -/]+[0-~]"  # charset designations (ESC ( B, ESC ) 0) and other nF escapes
# ESC =, ESC M, ESC c … (finals 0x30-0x5A, 0x5C-0x7E: never ESC [), or a lone ESC. ESC 7 and
# ESC 8 (save / restore the cursor) are left for the line buffer.
_TWO_BYTE_RENDER = r"\x1b(?![\[78])(?:[0-Z\\-~]|\Z)?"

# The CSI sequences the line buffer applies; every other CSI is stripped up front.
_LINE_CSI_FINALS = "@CDGKPXsu"
_CSI_OTHER = rf"\x1b\[(?![0-9;]*[{_LINE_CSI_FINALS}])[0-?]*[ -/]*(?:[@-~]|\Z)"
# C0 controls other than BS, TAB, LF, CR and ESC, plus DEL and C1 controls: invisible.
_CONTROLS = r"[\x00-\x07\x0b\x0c\x0e-\x1a\x1c-\x1f\x7f-\x9f]+"

_STRIP_FOR_RENDER = re.compile("|".join((_CSI_OTHER, _OSC, _STRING, _NF, _TWO_BYTE_RENDER, _CONTROLS)))
_CR_LF = re.compile(r"\r+\n")
_NEEDS_BUFFER = re.compile(r"[\r\x08\x1b]")
_LINE_CONTROL = re.compile(rf"(\x1b\[[0-9;]*[{_LINE_CSI_FINALS}]|\x1b[78]|\r|\x08)")


# Panes are created this wide: a line editor's echo of a long line and `\r` after a long output
# line act on the screen row the cursor is in, not on the start of the logical line.
WIDTH = 200


def render(raw: bytes, width: int = WIDTH) -> str:
    """Return the plain text of terminal output; ends with a newline iff its last line did."""
    text = _STRIP_FOR_RENDER.sub("", raw.decode("utf-8", errors="replace"))
    text = text.replace("\r\n", "\n")
    if "\r\n" in text:
        text = _CR_LF.sub("\n", text)
    lines = text.split("\n")
    if _NEEDS_BUFFER.search(text) is None:
        return text
    search = _NEEDS_BUFFER.search
    return "\n".join([line if search(line) is None else _render_line(line, width) for line in lines])


# The tty's echo (ECHOCTL) of tmux's answers to terminal queries a program printed (DA1, DA2,
# cursor position, status): input that arrived while the program ran, not the program's output.
_QUERY_ECHO = re.compile(r"\^\[\[(?:\?1;2c|>\d+;\d+;\d+c|\d+;\d+R|0n)")


def strip_query_echo(text: str) -> str:
    """Remove the echoed answers to terminal queries from rendered command output."""
    return _QUERY_ECHO.sub("", text) if "^[[" in text else text


def split_lines(text: str) -> list[str]:
    """Split rendered text into lines; a final newline does not add an empty line."""
    if not text:
        return []
    lines = text.split("\n")
    if text.endswith("\n"):
        lines.pop()
    return lines


@lru_cache(maxsize=4096)
def char_width(ch: str) -> int:
    """Display cells of one character: 2 for wide East Asian and emoji, 0 for combining marks."""
    if " " <= ch < "\x7f":
        return 1
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


class _Line:
    """One line of screen cells. A wide character fills its cell and an empty one after it."""

    def __init__(self) -> None:
        self.cells: list[str] = []
        self.pad: list[bool] = []  # True: a blank the terminal made, not the program

    def blank(self, upto: int) -> None:
        while len(self.cells) < upto:
            self.cells.append(" ")
            self.pad.append(True)

    def _clear_cell(self, i: int) -> None:
        """Before cell i is overwritten: a wide character it halves becomes a blank."""
        cells = self.cells
        if i >= len(cells):
            return
        if cells[i] == "" and i > 0:
            cells[i - 1], self.pad[i - 1] = " ", True
        elif i + 1 < len(cells) and cells[i + 1] == "":
            cells[i + 1], self.pad[i + 1] = " ", True

    def put(self, col: int, ch: str, width: int) -> int:
        self.blank(col + width)
        for i in range(col, col + width):
            self._clear_cell(i)
        self.cells[col], self.pad[col] = ch, False
        if width == 2:
            self.cells[col + 1], self.pad[col + 1] = "", False
        return col + width

    def join(self, col: int, mark: str) -> None:
        """A zero-width character joins the character left of the cursor."""
        i = min(col, len(self.cells)) - 1
        while i > 0 and self.cells[i] == "":
            i -= 1
        if i >= 0:
            self.cells[i] += mark

    def backed_over(self, col: int) -> None:
        """The cursor moved back onto cell `col`: a space there is the `BS SP BS` erase idiom of
        line editors and `stty` echo, a blank, not text."""
        if col < len(self.cells) and self.cells[col] == " ":
            self.pad[col] = True

    def text(self) -> str:
        end = len(self.cells)
        while end and self.pad[end - 1]:
            end -= 1
        return "".join(self.cells[:end])


def _row_start(col: int, width: int, pending: bool = False) -> int:
    """First cell of the screen row holding the cursor. Right after a character filled a row's
    last cell the cursor still sits in that row: the wrap is pending until the next character."""
    if pending and col > 0:
        return ((col - 1) // width) * width
    return (col // width) * width


def _render_line(line: str, width: int = WIDTH) -> str:
    """Apply CR, BS, cursor save/restore and the in-line CSI sequences of one line, in cells."""
    buf = _Line()
    col = 0
    pending = False  # the last character filled a row's last cell
    saved: int | None = None
    parts = _LINE_CONTROL.split(line)
    for i, part in enumerate(parts):
        if i % 2 == 0:
            for ch in part:
                if ch == "\x1b":  # a malformed sequence the strip pass left behind
                    continue
                cells = char_width(ch)
                if cells == 0:
                    buf.join(col, ch)
                else:
                    col = buf.put(col, ch, cells)
                    pending = col % width == 0
            continue
        row = _row_start(col, width, pending)
        pending = False
        if part == "\r":
            col = row
        elif part == "\x08":
            col = max(min(col, row + width - 1) - 1, row)
            buf.backed_over(col)
        elif part in ("\x1b7", "\x1b[s"):
            saved = col
        elif part in ("\x1b8", "\x1b[u"):
            if saved is not None:
                col = saved
        else:
            col = _apply_csi(buf, min(col, row + width - 1), row, part[2:-1], part[-1], width)
    return buf.text()


def _apply_csi(buf: _Line, col: int, row: int, params: str, final: str, width: int) -> int:
    """Apply one in-line CSI sequence to the line (cursor at `col` in the row starting at `row`);
    return the new cursor column."""
    first = params.split(";", 1)[0]
    arg = int(first) if first else 0
    count = max(arg, 1)
    cells, pad = buf.cells, buf.pad
    if final == "C":
        return min(col + count, row + width - 1)
    if final == "D":
        col = max(col - count, row)
        buf.backed_over(col)
        return col
    if final == "G":
        return row + min(count, width) - 1
    if final == "K":
        start = {0: col, 1: row, 2: row}.get(arg)
        end = min(col + 1 if arg == 1 else row + width, len(cells))
        if start is None or start >= len(cells):
            return col
        buf._clear_cell(start)
        if end < len(cells):
            buf._clear_cell(end)
            cells[start:end] = [" "] * (end - start)
            pad[start:end] = [True] * (end - start)
        else:
            del cells[start:], pad[start:]
    elif final == "P":
        buf._clear_cell(col)
        del cells[col : col + count], pad[col : col + count]
    elif final == "X":
        end = min(col + count, len(cells))
        if end > col:
            buf._clear_cell(col)
            buf._clear_cell(end)
            cells[col:end] = [" "] * (end - col)
            pad[col:end] = [True] * (end - col)
    elif final == "@" and col < len(cells):
        buf._clear_cell(col)
        cells[col:col] = [" "] * count
        pad[col:col] = [True] * count
    return col
