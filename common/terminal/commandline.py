"""How a command is typed into each kind of shell so it runs as one unit with a start marker (pure).

The command text is data: whatever bytes the agent sends are the bytes the shell runs. A line
editor interprets some typed bytes (TAB completes, Ctrl-A moves the cursor, ESC starts a key
sequence) and the remote tty's line discipline others (Ctrl-C, Ctrl-Z, Ctrl-\\ send signals,
Ctrl-S/Ctrl-Q are flow control, Ctrl-V quotes, Ctrl-D ends input) before any shell sees them;
bracketed paste protects from the first kind only. So a command holding any byte outside
printable ASCII-or-UTF-8 text (every control byte, TAB and newline included) is typed as a short
printable encoding that the shell itself decodes and `eval`s:

- bash and zsh: `eval $'…'` (ANSI-C quoting, control bytes as three-digit octal escapes);
- dash and busybox ash: the bytes as a `printf` format (octal escapes), built in a variable from
  short quoted lines (dash reads through the tty's canonical mode and ash's editor cuts lines at
  1024 bytes), decoded with one `printf` and `eval`ed.

Plain one-line commands are typed as they are. In dash and ash the start marker comes from the
`__sk_c` call typed in front of the command; it hands the previous command's `$?` on, so `$?` in
the command is the user's, not sshkeep's.
"""

from __future__ import annotations

import re

from sshkeep.common.terminal.shellinit import SHELLS_WITH_HOOKS, START_FUNCTION
from sshkeep.common.tmux import quote, quote_controls

# Shell kind recorded for a login shell the setup lines could not integrate.
NO_SHELL = "none"
# Longer input goes through a tmux paste buffer rather than send-keys.
PASTE_THRESHOLD = 4096
POSIX_LINE_LIMIT = 900
_PIECE = 200
ASH_LEAD = " " * 16

# Safe to type into bash's readline or zsh's zle as is: no C0 control byte, no DEL.
_PLAIN_HOOKED = re.compile(r"[^\x00-\x1f\x7f]*")
# Safe to type into dash's canonical tty or busybox ash's editor: printable ASCII only (ash's
# editor handles multi-byte characters only in a UTF-8 locale).
_PLAIN_POSIX = re.compile(r"[ -~]*")


def typed_text(command: str, shell: str | None) -> str:
    """What to type for `command` so the shell runs it as one unit and marks its start."""
    if shell == NO_SHELL:
        return command  # typed exactly as given: we cannot know this shell's syntax
    if shell in SHELLS_WITH_HOOKS:
        if _PLAIN_HOOKED.fullmatch(command):
            return command
        return "eval " + ansi_c_quote(command)
    # busybox ash's key reader swallows up to a few bytes that follow an escape sequence it does
    # not know (a terminal's answer to a query, left in the input): blanks in front absorb them.
    lead = ASH_LEAD if shell == "ash" else ""
    if _PLAIN_POSIX.fullmatch(command) and len(command) <= POSIX_LINE_LIMIT:
        return f"{lead}{START_FUNCTION}; {command}"
    return lead + _posix_encoded(command)


def echo_needle(text: str) -> str:
    """What the shell's echo of `text` surely shows: the start of its first line, up to the
    terminal width (a line editor may wrap or scroll after that)."""
    return text.split("\n", 1)[0].lstrip(" ")[:60]


ENTER = "\r"  # what the Enter key sends


def typing_keys(pane_id: str, shell: str | None, text: str) -> str:
    """The tmux command that types a one-line `text` at `shell`'s prompt: the keys that empty the
    line, the text and Enter, as one literal `send-keys` (tmux writes them to the pane as one
    write, the bytes key names would give: Ctrl-E is 0x05 either way)."""
    keys = quote_controls(clear_line_bytes(shell)) + quote(text) + quote_controls(ENTER)
    return f"send-keys -t {pane_id} -l -- {keys}"


def line_ends(lines: list[str]) -> list[tuple[str, str]]:
    """Each setup line (shellinit.setup_lines) with the key that ends it: Enter for the first,
    which the shell's line editor reads; a line feed for the others, which bash, dash and ash read
    with `read` from the tty (see shellinit's `_HISTORY_OFF`)."""
    return [(line, ENTER if n == 0 else "\n") for n, line in enumerate(lines)]


def clear_line_bytes(shell: str | None) -> str:
    """The control characters that empty the shell's input line before a command is typed.

    Whatever sits there would be prepended to the command: a half-typed line a person left, or
    a terminal's answer to a query the last program printed (`ESC[c`, `ESC[6n`), which arrives as
    input after the program ended. Ctrl-E Ctrl-U empties readline's, zle's and ash's line (end,
    then kill to its start); dash reads through the tty's canonical mode, where Ctrl-U is the
    kill character. An unintegrated shell gets nothing: its keys are unknown. (On an empty line
    Ctrl-U rings readline's bell: the bash setup silences the line editor's bell, shellinit.py.)
    """
    if shell == NO_SHELL or shell is None:
        return ""
    if shell == "dash":
        return "\x15"
    return "\x05\x15"


def ansi_c_quote(text: str) -> str:
    """`text` as one bash/zsh `$'…'` word made of printable characters (plus non-ASCII text)."""
    out = ["$'"]
    for ch in text:
        if ch == "\\" or ch == "'":
            out.append("\\" + ch)
        elif ch < " " or ch == "\x7f":
            out.append(f"\\{ord(ch):03o}")
        else:
            out.append(ch)
    out.append("'")
    return "".join(out)


def printf_format(data: bytes) -> list[str]:
    """`data` as printf format pieces of printable ASCII (no quote), each piece whole escapes."""
    pieces: list[str] = []
    cur: list[str] = []
    size = 0
    for b in data:
        if b == 0x25:
            tok = "%%"
        elif b == 0x5C:
            tok = "\\\\"
        elif 0x20 <= b < 0x7F and b != 0x27:
            tok = chr(b)
        else:
            tok = f"\\{b:03o}"
        if size + len(tok) > _PIECE:
            pieces.append("".join(cur))
            cur, size = [], 0
        cur.append(tok)
        size += len(tok)
    pieces.append("".join(cur))
    return pieces


def _posix_encoded(command: str) -> str:
    """dash/ash: build the command's bytes as a printf format, decode it, keep `$?`, eval it."""
    pieces = printf_format(command.encode())
    run = f'__sk_x=$(printf "$__sk_f."); {START_FUNCTION} "$__sk_r"; eval "${{__sk_x%.}}"'
    if len(pieces) == 1:
        return f"__sk_r=$?; __sk_f='{pieces[0]}'; {run}"
    lines = [f"{{ __sk_r=$?; __sk_f='{pieces[0]}'"]
    lines += [f"__sk_f=$__sk_f'{p}'" for p in pieces[1:]]
    lines.append(f"{run}\n}}")
    return "\n".join(lines)
