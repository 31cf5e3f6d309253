"""What the daemon and the CLI both know about sshkeep's private tmux server: its config and how a
word is quoted for tmux's command parser. Pure: no process is started here."""

from __future__ import annotations

# The server's own config (`-f`): written by the daemon's Tmux and by `sshkeep service tmux-server`,
# so a server started either way behaves the same.
TMUX_CONF = """\
set -g remain-on-exit on
set -g default-size 200x50
set -g status off
set -g history-limit 50000
set -g exit-empty off
set -g destroy-unattached off
set -g default-terminal screen-256color
"""


def quote(word: str) -> str:
    """Quote one word for tmux's command parser (single quotes; no expansion inside)."""
    return "'" + word.replace("'", "'\"'\"'") + "'"
