"""What tmux keeps for sshkeep: the `@sshkeep_*` user options of each session, and the pane fields
the monitor reads, each as one dataclass that yields its `list-panes -F` format and the parser of
that format's lines (field names are the tmux names, as in libtmux's `neo.Obj`).

The options live on the tmux session, so they outlive the daemon: a new daemon adopts every
session from one `list-panes -a` over the control client (see `SessionManager.adopt`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import ClassVar

from sshkeep.common.tmux import quote
from sshkeep.daemon.sessions.tmux import pane_exit_status

SEP = "\t"  # no option value holds a tab: ids, hex nonces, validated hosts and names, JSON
PREFIX = "@sshkeep_"


def _argv(text: str) -> list[str]:
    try:
        value = json.loads(text) if text else []
    except json.JSONDecodeError:
        return []
    return [str(x) for x in value] if isinstance(value, list) else []


def _float(text: str) -> float:
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0


def _encode(name: str, value: object) -> str:
    if value is None:
        return ""
    if name == "argv":
        return json.dumps(value)
    if name == "created":
        return f"{value:.3f}"
    return str(value)


_DECODE: dict[str, Callable[[str], object]] = {
    "conn": lambda text: text or None,
    "shell": lambda text: text or None,
    "created": _float,
    "argv": _argv,
    "dropped": lambda text: int(text) if text.isdigit() else 0,
}


@dataclass
class SessionOptions:
    """The `@sshkeep_<field>` options of one sshkeep tmux session."""

    id: str
    nonce: str = ""
    target: str = ""
    conn: str | None = None  # the config.yml entry, None for a plain destination
    created: float = 0.0
    shell: str | None = None  # the integrated shell, NO_SHELL, or None before integration
    argv: list[str] = field(default_factory=list)  # the ssh command, for reconnect and side channels
    dropped: int = 0  # log bytes before this offset were dropped by the log cap

    NAMES: ClassVar[tuple[str, ...]]

    @classmethod
    def list_format(cls) -> list[str]:
        return [f"#{{{PREFIX}{name}}}" for name in cls.NAMES]

    @classmethod
    def parse(cls, values: list[str]) -> SessionOptions:
        """From the texts of `list_format()`, in order."""
        kw = {name: _DECODE.get(name, str)(text) for name, text in zip(cls.NAMES, values, strict=True)}
        return cls(**kw)  # type: ignore[arg-type]

    def set_args(self, sid: str) -> list[str]:
        """Words for `Tmux.run` that set every option (each command after a `;`)."""
        words: list[str] = []
        for name in self.NAMES:
            words += [";", "set-option", "-t", f"={sid}:", PREFIX + name, _encode(name, getattr(self, name))]
        return words


SessionOptions.NAMES = tuple(f.name for f in fields(SessionOptions))


def set_line(sid: str, **values: object) -> str:
    """One control-client line that sets the named options (a None value unsets one)."""
    parts = []
    for name, value in values.items():
        if name not in SessionOptions.NAMES:
            raise ValueError(f"no sshkeep option {name!r}")
        if value is None:
            parts.append(f"set-option -u -t ={sid}: {PREFIX}{name}")
        else:
            parts.append(f"set-option -t ={sid}: {PREFIX}{name} {quote(_encode(name, value))}")
    return " ; ".join(parts)


@dataclass(frozen=True)
class PaneState:
    """tmux's own fields of one pane, as `list-panes -F` reports them."""

    pane_id: str
    pane_dead: str
    pane_dead_status: str
    pane_dead_signal: str
    pane_dead_time: str
    pane_pid: str
    pane_pipe: str = "1"  # "0": tmux's pipe-pane is closed (its writer exited), nothing reaches the log

    NAMES: ClassVar[tuple[str, ...]]

    @classmethod
    def list_format(cls) -> list[str]:
        return [f"#{{{name}}}" for name in cls.NAMES]

    @classmethod
    def parse(cls, values: list[str]) -> PaneState:
        return cls(*values)

    @property
    def dead(self) -> bool:
        return self.pane_dead == "1"

    @property
    def piped(self) -> bool:
        return self.pane_pipe != "0"

    @property
    def exit_status(self) -> int | None:
        return pane_exit_status(self.pane_dead_status, self.pane_dead_signal, self.pane_pid)

    def dead_since(self) -> float:
        """When ssh exited, as tmux knows it (so a daemon restart does not reset the reaper's clock)."""
        return float(self.pane_dead_time) if self.pane_dead_time.isdigit() else time.time()


PaneState.NAMES = tuple(f.name for f in fields(PaneState))


PANE_FORMAT = quote(SEP.join(PaneState.list_format()))
# For adoption: the pane's fields, then the session's options.
SESSION_PANE_FORMAT = quote(SEP.join(PaneState.list_format() + SessionOptions.list_format()))


def parse_pane(line: str) -> PaneState | None:
    """One line of `list-panes -F PANE_FORMAT`, or None for a line of another shape."""
    parts = line.split(SEP)
    return PaneState.parse(parts) if len(parts) == len(PaneState.NAMES) else None


def parse_session_pane(line: str) -> tuple[PaneState, SessionOptions] | None:
    """One line of `list-panes -F SESSION_PANE_FORMAT`, or None for a line of another shape."""
    parts = line.split(SEP)
    n = len(PaneState.NAMES)
    if len(parts) != n + len(SessionOptions.NAMES):
        return None
    return PaneState.parse(parts[:n]), SessionOptions.parse(parts[n:])
