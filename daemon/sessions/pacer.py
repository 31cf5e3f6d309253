"""Pacing a terminal's log scans while a command streams output.

The log writer appends each piece tmux hands it (a few KB to 64 KiB), and every append is an
inotify event: 100 MB of output would be read, scanned for markers and announced to the waiters
thousands of times, each time for a few KB. That per-wake work, not the bytes, is what the daemon
spends on bulk output, on the two cores tmux (the real bottleneck) needs too.

So a scan that read a lot of a running command's output and no prompt holds the next one back a
little: the changes in between are read in one go once the hold ends. The hold starts at
`FIRST_HOLD` and doubles while the output keeps coming, up to `MAX_HOLD`: what a command's end
waits for is at most about as long as its output already streamed, never more than `MAX_HOLD`.
Nothing changes for a quiet terminal: the first change after quiet (an echo's output and prompt)
is read at once, as is everything after a prompt; a hold whose scan finds nothing new ends the
pacing. Only the moment a scan happens moves, never what it reads: every byte is still scanned,
markers cut between two reads are still joined (see `Session.scan`).
"""

from __future__ import annotations

from dataclasses import dataclass

STREAMING_BYTES = 16 * 1024  # one scan read this much of a running command's output: it streams
FIRST_HOLD = 0.001
MAX_HOLD = 0.008


@dataclass
class ScanPacer:
    """When one terminal's next scan may run (driven by the SessionManager)."""

    hold: float = 0.0  # the hold after the latest scan; 0: the next change is read at once
    held: bool = False  # a held scan is due: changes until then need no scan of their own

    def after_scan(self, consumed: int, running: bool, prompted: bool) -> float:
        """The hold before the next scan, given what the scan just done read: `consumed` bytes,
        while a command runs (`running`, after the scan), and whether it saw a prompt."""
        if not running or prompted or consumed == 0 or (not self.hold and consumed < STREAMING_BYTES):
            self.hold = 0.0
        else:
            self.hold = min(MAX_HOLD, 2 * self.hold) if self.hold else FIRST_HOLD
        return self.hold
