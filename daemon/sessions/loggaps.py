"""What a session log could not record: its gap sidecar, and the pipe-pane command that writes both.

The pipe-pane writer (daemon/sessions/logwriter.py) appends `<offset> <bytes> open|closed` to
`<key>.gaps` for every run of output a full disk kept out of the log (bytes missing just before
log offset `offset`; `open` while the disk is still full, the count still growing). When tmux's
pipe itself was found closed and re-attached, the daemon appends `<offset> -1 closed`: output was
lost there, and nobody could count it.
"""

from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

WRITER = Path(__file__).with_name("logwriter.py")
UNKNOWN = -1


def gaps_path(log_path: Path) -> Path:
    return log_path.with_suffix(".gaps")


def pipe_command(log_path: Path, host: Path | None = None) -> str:
    """The shell command tmux's pipe-pane runs for this log (in place of `cat >> log`); with
    `host`, the writer first hands the pane's output to the writer host listening there."""
    hosted = [str(host)] if host is not None else []
    return _writer(str(log_path), str(gaps_path(log_path)), *hosted)


def host_command(host: Path) -> str:
    """The shell command that runs the writer host on the socket `host` (see writerhost.py)."""
    return _writer("--host", str(host)) + " </dev/null >/dev/null 2>&1"


def _writer(*args: str) -> str:
    """`exec` of the writer, isolated (`-I -S`: no site, no package imports), with `args`."""
    return "exec " + " ".join(shlex.quote(w) for w in [sys.executable, "-I", "-S", str(WRITER), *args])


@dataclass
class GapLog:
    """The gaps of one log, read incrementally from its sidecar."""

    path: Path
    read_pos: int = 0
    gaps: dict[int, int] = field(default_factory=dict)  # offset -> bytes (UNKNOWN: uncounted)
    open_at: int | None = None  # the offset of a gap still growing (the disk is full now)
    _tail: bytes = b""
    # The logs whose writer drops output now, shared by every terminal's GapLog: a reply asks
    # whether anything drops without looking at every terminal.
    watch: set[Path] | None = None

    def refresh(self) -> None:
        """Read what the writer appended since the last call (complete lines only)."""
        try:
            size = os.stat(self.path).st_size
        except FileNotFoundError:
            return
        if size < self.read_pos:  # replaced (a new session of the same id): start again
            self.read_pos, self.gaps, self.open_at, self._tail = 0, {}, None, b""
            self._watched()
        if size == self.read_pos:
            return
        with open(self.path, "rb") as fh:
            fh.seek(self.read_pos)
            data = fh.read(size - self.read_pos)
        self.read_pos += len(data)
        data = self._tail + data
        lines = data.split(b"\n")
        self._tail = lines.pop()
        for line in lines:
            parts = line.split()
            if len(parts) != 3:
                continue
            try:
                offset, count = int(parts[0]), int(parts[1])
            except ValueError:
                continue
            self.gaps[offset] = count
            if parts[2] == b"open":
                self.open_at = offset
            elif self.open_at is not None and offset >= self.open_at:
                self.open_at = None
        self._watched()

    def _watched(self) -> None:
        if self.watch is not None:
            if self.open_at is None:
                self.watch.discard(self.path)
            else:
                self.watch.add(self.path)

    @property
    def dropping(self) -> bool:
        """The writer is dropping output now (its disk is full)."""
        return self.open_at is not None

    def between(self, start: int, end: int) -> tuple[int, int]:
        """(bytes counted, gaps not counted) missing from log range [start, end], both ends in."""
        counted = unknown = 0
        for offset, count in self.gaps.items():
            if start <= offset <= end:
                if count == UNKNOWN:
                    unknown += 1
                else:
                    counted += count
        return counted, unknown

    def total(self) -> int:
        return sum(c for c in self.gaps.values() if c > 0)

    def note_unknown(self, offset: int) -> None:
        """The pipe was found detached at log offset `offset`: what it missed is lost, uncounted."""
        with open(self.path, "ab") as fh:
            fh.write(f"{offset} {UNKNOWN} closed\n".encode())
