"""Telling ssh's closing words apart from the rest of a dead session's terminal (pure).

When ssh ends it prints a line or two of its own (`Connection to HOST closed by remote host.`,
`Timeout, server HOST not responding.`, `client_loop: send disconnect: Broken pipe`); a remote
shell that logs itself out after `TMOUT` seconds idle says so just before. Those lines are the
disconnect message; a running command's output ends where they begin.
"""

from __future__ import annotations

import re

# Every helper sshkeep types into a shell is named with this prefix (shellinit.py): a line of the
# terminal holding it is sshkeep's own typing (setup, the dash/ash command prefix), never ssh's.
TYPED_PREFIX = "__sk_"

IDLE_LOGOUT = re.compile(r"timed out waiting for input: auto-logout|^zsh: timeout\b", re.MULTILINE)

CLOSING = re.compile(
    rb"timed out waiting for input: auto-logout"  # bash (and busybox builds with TMOUT)
    rb"|(?:^|(?<=\n))zsh: timeout\b"
    rb"|Connection to \S+ closed"
    rb"|Connection closed by \S+"
    rb"|Timeout, server \S+ not responding"
    rb"|client_loop: "
    rb"|packet_write_wait: "
    rb"|ssh_dispatch_run_fatal: "
    rb"|Read from remote host \S+: "
    rb"|Write failed: "
    rb"|Received disconnect from "
    rb"|Disconnected from "
    rb"|Killed by signal \d+"
    rb"|Connection reset by "
    rb"|Bad packet length "
    rb"|Corrupted MAC on input"
)


def closing_start(data: bytes) -> int | None:
    """Where ssh's closing lines (or a shell's idle-logout notice) start in `data`, the end of a
    dead session's log; None when it holds none."""
    m = CLOSING.search(data)
    return m.start() if m is not None else None


def idle_logout(words: str) -> bool:
    """Whether a disconnect message says the remote shell logged out for being idle (TMOUT)."""
    return IDLE_LOGOUT.search(words) is not None
