"""What the daemon and the CLI both know about sshkeep's private tmux server: its config and how a
word is quoted for tmux's command parser. Pure: no process is started here."""

from __future__ import annotations

# Set on a tmux session while a person holds it (`sshkeep attach --take`): only then does a
# person's client attach read-write. The server's `client-attached` hook makes every other one
# read-only (as `attach -r` does), so a person's keys never mix with the agent's commands; the
# daemon's own control client is exempt.
HELD_OPTION = "@sshkeep_human"
HOLD_HOOK = (
    f'if -F "#{{||:#{{{HELD_OPTION}}},#{{client_control_mode}}}}" "" '
    '"refresh-client -f read-only,ignore-size"'
)

# The server's own config (`-f`): written by the daemon's Tmux and by `sshkeep service tmux-server`,
# so a server started either way behaves the same. Window names are never shown: automatic-rename
# would look up each pane's foreground program (/proc) as its output arrives, on the output's path.
TMUX_CONF = f"""\
set -g remain-on-exit on
set -g default-size 200x50
set -g status off
set -g automatic-rename off
set -g history-limit 50000
set -g exit-empty off
set -g destroy-unattached off
set -g default-terminal screen-256color
set-hook -g client-attached '{HOLD_HOOK}'
"""


def quote(word: str) -> str:
    """Quote one word for tmux's command parser (single quotes; no expansion inside)."""
    return "'" + word.replace("'", "'\"'\"'") + "'"


def quote_controls(chars: str) -> str:
    """Control characters as a tmux word (double quotes, octal escapes): a control line holds no
    raw newline, and the other control characters read as what they are. Quoted words written
    side by side are one word to tmux (`"\\005"'echo'"\\r"`)."""
    if not all(ord(c) < 0x20 or ord(c) == 0x7F for c in chars):
        raise ValueError("only control characters are quoted this way")
    return '"' + "".join(f"\\{ord(c):03o}" for c in chars) + '"' if chars else ""
