"""Invisible prompt markers: what the shell integration prints, and finding them in raw bytes.

Every marker is an OSC 133 sequence carrying the session's nonce, so user programs that print
their own OSC 133 are never mistaken for ours. tmux does not display OSC sequences, while the
pipe-pane log keeps them byte for byte.

    ESC ] 133 ; L ; sk=<nonce> BEL                ssh authenticated (ssh LocalCommand)
    ESC ] 133 ; X ; sk=<nonce> ; sh=<shell> BEL   shell integration installed
    ESC ] 133 ; C ; sk=<nonce> BEL                command starts (bash PS0, zsh preexec)
    ESC ] 133 ; D ; <status> ; sk=<nonce>:<seq> BEL   prompt: previous command ended with <status>
    ESC ] 133 ; P ; sk=<nonce> BEL                continuation prompt (PS2)
    ESC ] 133 ; W ; sk=<nonce> ; <dir> BEL        the shell's working directory (right after D)
"""

from __future__ import annotations

import re
from typing import NamedTuple

_MARKER = re.compile(rb"\x1b\]133;([LXCDPW]);([^\x07\x1b]{0,200})\x07")
_PARTIAL_MAX = 256
_KINDS = {k.encode(): k for k in "LXCDPW"}


class Marker(NamedTuple):
    """One marker found in the log: kind, absolute byte offsets, and its fields (a tuple: a scan
    makes a few per command, and a tuple costs a fraction of a frozen dataclass to build)."""

    kind: str
    start: int
    end: int
    status: int | None = None
    seq: int | None = None
    shell: str | None = None
    text: str | None = None  # W: the directory


def _parse_fields(kind: str, fields: str, nonce: str) -> tuple[bool, int | None, int | None, str | None]:
    tag = "sk=" + nonce
    if kind == "D":
        status_text, sep, rest = fields.partition(";")
        # `<status>;sk=<nonce>:<seq>`: exactly two fields, the second this nonce's.
        if not sep or ";" in rest or not rest.startswith(tag + ":"):
            return False, None, None, None
        try:
            return True, int(status_text), int(rest.rsplit(":", 1)[1]), None
        except ValueError:
            return False, None, None, None
    first, sep, rest = fields.partition(";")
    if first != tag:
        return False, None, None, None
    if kind == "W":
        return bool(sep), None, None, rest  # a directory may hold ';'
    shell: str | None = None
    if kind == "X" and sep:
        for part in rest.split(";"):
            if part.startswith("sh="):
                shell = part[3:]
    return True, None, None, shell


def find_markers(data: bytes, base: int, nonce: str) -> tuple[list[Marker], int]:
    """Markers of this nonce in `data` (which starts at absolute offset `base`).

    Returns the markers and how many bytes of `data` are fully scanned: a possible marker cut
    at the end of `data` is left for the next call.
    """
    found: list[Marker] = []
    # Every marker starts with ESC: plain output (the bulk of a large one) needs no regex pass.
    for m in _MARKER.finditer(data) if b"\x1b" in data else ():
        kind_b, fields = m.groups()
        kind = _KINDS[kind_b]
        ok, status, seq, shell = _parse_fields(kind, fields.decode(errors="replace"), nonce)
        if ok:
            start, end = m.span()
            if kind == "W":
                found.append(Marker(kind, base + start, base + end, text=shell))
            else:
                found.append(Marker(kind, base + start, base + end, status, seq, shell))
    consumed = len(data)
    cut = data.rfind(b"\x1b", max(0, len(data) - _PARTIAL_MAX))
    if cut != -1 and (not found or base + cut >= found[-1].end) and b"\x07" not in data[cut:]:
        tail = data[cut:]
        if tail == b"\x1b"[: len(tail)] or tail.startswith(b"\x1b]"):
            consumed = cut
    return found, consumed


def strip_markers(data: bytes) -> bytes:
    """Remove every marker-like sequence (any nonce) from raw bytes."""
    return _MARKER.sub(b"", data) if b"\x1b" in data else data
