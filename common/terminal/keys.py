"""Turning an agent's key list into tmux send-keys commands (pure)."""

from __future__ import annotations

import re

from sshkeep.common.tmux import quote

_NAMED = (
    "Enter|Tab|BTab|Space|Escape|BSpace|Up|Down|Left|Right|Home|End|IC|DC|Insert|Delete|"
    "PageUp|PgUp|PPage|PageDown|PgDn|NPage|F[1-9]|F1[0-2]|KP[0-9]|KPEnter"
)
_KEY = re.compile(rf"^(?:(?:[CMS]-)+(?:{_NAMED}|[!-~])|{_NAMED}|\^[A-Za-z\[\]\\@_?])$")


# Keys after which a shell at its prompt may run a line and print a new prompt.
LINE_ENDING_KEYS = frozenset({"Enter", "KPEnter", "C-m", "C-j", "C-c", "C-d", "^M", "^J", "^C", "^D"})


def is_key_name(item: str) -> bool:
    """True for tmux key names like `Enter`, `C-c`, `M-x`, `Up`, `F5`; False for literal text."""
    return _KEY.fullmatch(item) is not None


def keys_command(pane_id: str, keys: list[str]) -> str:
    """One tmux command line (commands joined by ` ; `) that sends every key in order."""
    parts: list[str] = []
    for item in keys:
        if not item:
            continue
        if is_key_name(item):
            parts.append(f"send-keys -t {pane_id} {quote(item)}")
        else:
            parts.append(f"send-keys -t {pane_id} -l -- {quote(item)}")
    return " ; ".join(parts)
