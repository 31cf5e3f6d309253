"""The pipe-pane writer: appends a pane's output to its session log, and survives a full disk.

tmux pipes each pane's output into `python -I -S logwriter.py LOG GAPS [HOST]` (in place of
`cat >> LOG`). `cat` exits at the first ENOSPC; tmux then closes the pipe for good
(`pane_pipe=0`), and every later byte is lost without a count, the prompt markers that end a
command included (the session would stay busy forever). This writer instead:

- keeps `RESERVE` bytes allocated past the log's end (fallocate with KEEP_SIZE: the file's size
  does not change), so that once the disk is full it can still append prompt markers;
- when the reserve cannot be renewed (ENOSPC), or a write fails, drops ordinary output but keeps
  every OSC 133 sequence (sshkeep's markers, tens of bytes each): commands still end, with their
  exit status, and what they printed up to then;
- counts exactly how many bytes it dropped, and where: the line `<offset> <bytes> open|closed`
  goes to the sidecar file GAPS (preallocated too) before any later byte reaches the log, so a
  reader that reads the log first and the sidecar second always knows each gap before it;
- keeps draining tmux, so the pipe never detaches; while dropping it retries the disk with a
  backoff (0.25 s up to 2 s, also with no output coming) and resumes once space returns.

It runs by path with `-I -S` (standard library only, no package imports). With HOST, the process
tmux starts hands the pane's output to the writer host listening there (`--host HOST`, one per tmux
server), which forks the pane's writer: ~1 MB of memory of its own per pane instead of ~4 MB (see
the section on the host below).
"""

from __future__ import annotations

import _socket
import ctypes
import errno
import os
import select
import sys
import time

RESERVE = 256 * 1024  # bytes kept allocated past the end of the log
GAPS_RESERVE = 64 * 1024
READ_SIZE = 65536
MAX_PENDING = 1024 * 1024  # markers held in memory while even the reserve is gone
RETRY_FIRST, RETRY_MAX = 0.25, 2.0
UPDATE_EVERY = 1.0  # an open gap's running count goes to the sidecar at most this often
_OSC133 = b"\x1b]133;"
_MAX_MARKER = 256
_PARTIAL = 256
_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_KEEP_SIZE = 0x01


class Disk:
    """fallocate(2) with FALLOC_FL_KEEP_SIZE, when libc has it."""

    def __init__(self) -> None:
        try:  # the symbols already loaded (libc's among them); ctypes.util would cost 2 MB of imports
            self._libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
        except OSError:
            self._libc = None
        self.supported = self._libc is not None and hasattr(self._libc, "fallocate")

    def reserve(self, fd: int, start: int, length: int) -> bool:
        """True when [start, start+length) is allocated; False on a full disk."""
        if not self.supported or self._libc is None:
            return True  # nothing to reserve with: writes themselves will tell
        rc = self._libc.fallocate(fd, _KEEP_SIZE, ctypes.c_long(start), ctypes.c_long(length))
        if rc == 0:
            return True
        err = ctypes.get_errno()
        if err in _FULL:
            return False
        self.supported = False  # EOPNOTSUPP and the like: the filesystem cannot reserve
        return True


def split_markers(data: bytes) -> tuple[list[bytes | int], bytes]:
    """`data` as segments (int: bytes dropped, bytes: a marker kept), and a tail that may be the
    start of a marker cut by the read (kept for the next read)."""
    carry = b""
    cut = data.rfind(b"\x1b", max(0, len(data) - _PARTIAL))
    if cut != -1 and b"\x07" not in data[cut:]:
        tail = data[cut:]
        if _OSC133.startswith(tail[: len(_OSC133)]):
            data, carry = data[:cut], tail
    out: list[bytes | int] = []
    pos = 0
    at = data.find(_OSC133)
    while at != -1:
        end = data.find(b"\x07", at, at + _MAX_MARKER)
        esc = data.find(b"\x1b", at + 1, end) if end != -1 else -1
        if end == -1 or esc != -1:  # not a whole marker: plain output
            at = data.find(_OSC133, at + 1)
            continue
        if at > pos:
            out.append(at - pos)
        out.append(data[at : end + 1])
        pos = end + 1
        at = data.find(_OSC133, pos)
    if pos < len(data):
        out.append(len(data) - pos)
    return out, carry


class Writer:
    """One log and its gap sidecar, written from one input stream."""

    def __init__(self, log_path: str, gaps_path: str, disk: Disk | None = None) -> None:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self.fd = os.open(log_path, flags, 0o600)
        self.gfd = os.open(gaps_path, flags, 0o600)
        self.disk = disk or Disk()
        self.pos = os.fstat(self.fd).st_size
        self.reserved = self.pos
        self.gaps_pos = os.fstat(self.gfd).st_size
        self.gaps_reserved = self.gaps_pos
        self.low = False  # dropping output: the disk is full
        self.pending: list[bytes | int] = []  # what is not on disk yet, in order
        self.pending_bytes = 0
        self.carry = b""
        self.retry_at = 0.0
        self.backoff = RETRY_FIRST
        self.reported: tuple[int, int] | None = None  # the open gap as last written (pos, bytes)
        self.reported_at = 0.0
        self._renew()
        self._renew_gaps()

    # --- disk -------------------------------------------------------------------------------------

    def _renew(self, need: int = 0) -> bool:
        """Keep RESERVE bytes allocated past what is about to be written."""
        if self.reserved - self.pos - need >= RESERVE // 2:
            return True
        if not self.disk.reserve(self.fd, self.pos, need + RESERVE):
            return False
        self.reserved = max(self.reserved, self.pos + need + RESERVE)
        return True

    def _renew_gaps(self) -> None:
        if self.gaps_reserved - self.gaps_pos < GAPS_RESERVE // 2 and self.disk.reserve(
            self.gfd, self.gaps_pos, GAPS_RESERVE
        ):
            self.gaps_reserved = self.gaps_pos + GAPS_RESERVE

    def _write(self, fd: int, data: bytes) -> int:
        """Bytes of `data` written (all, or fewer on a full disk)."""
        done = 0
        while done < len(data):
            try:
                n = os.write(fd, data[done:])
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in _FULL:
                    return done
                raise
            if n == 0:
                return done
            done += n
        return done

    def _record(self, offset: int, count: int, state: str) -> bool:
        line = f"{offset} {count} {state}\n".encode()
        n = self._write(self.gfd, line)
        if n and n < len(line):
            # A torn line would be misread: cut it off (truncating needs no space) and retry later.
            os.ftruncate(self.gfd, self.gaps_pos)
            return False
        if n == 0:
            return False
        self.gaps_pos += n
        self._renew_gaps()
        return True

    # --- input ------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if not self.low and not self.pending:
            if self.carry:
                data, self.carry = self.carry + data, b""
            if self._renew(len(data)):
                n = self._write(self.fd, data)
                self.pos += n
                if n == len(data):
                    return
                data = data[n:]
            self._enter_low()
        self._drop(data)
        self.flush()

    def _enter_low(self) -> None:
        if not self.low:
            self.low = True
            self.backoff = RETRY_FIRST
            self.retry_at = time.monotonic() + self.backoff

    def _drop(self, data: bytes) -> None:
        segments, self.carry = split_markers(self.carry + data)
        for seg in segments:
            if isinstance(seg, bytes) and self.pending_bytes + len(seg) > MAX_PENDING:
                seg = len(seg)  # not even markers fit in memory any more: count them as dropped
            if isinstance(seg, int):
                self._drop_count(seg)
            else:
                self.pending.append(seg)
                self.pending_bytes += len(seg)

    def flush(self, final: bool = False) -> None:
        """Write what is pending, in order, as far as the disk allows."""
        while self.pending:
            seg = self.pending[0]
            if isinstance(seg, int):
                if len(self.pending) == 1 and not final and self.low:
                    self._report_open(seg)
                    return  # the gap is still growing: closed when something follows it
                if not self._record(self.pos, seg, "closed"):
                    return
                self.reported = None
                self.pending.pop(0)
                continue
            if self.reserved - self.pos < len(seg) and not self._renew(len(seg)):
                return
            after = self.pos + len(seg)
            if self.low and not final and self.reported != (after, 0):
                # Still dropping: say so for the spot after the marker before the marker is there,
                # so a reader that sees the marker (a command's end) also sees that the disk is full.
                if not self._record(after, 0, "open"):
                    return
                self.reported, self.reported_at = (after, 0), time.monotonic()
            n = self._write(self.fd, seg)
            self.pos += n
            if n == 0:
                return  # nothing fitted: the marker waits for the next attempt
            if n < len(seg):
                # Half a marker is in the log now (it reads as output there): the rest of it can
                # only be counted as dropped, in front of what is pending.
                self.pending[0] = len(seg) - n
                self.pending_bytes -= len(seg)
                continue
            self.pending.pop(0)
            self.pending_bytes -= len(seg)

    def _report_open(self, count: int) -> None:
        now = time.monotonic()
        if self.reported is not None and self.reported == (self.pos, count):
            return
        if self.reported is not None and now - self.reported_at < UPDATE_EVERY:
            return
        if self.gaps_reserved - self.gaps_pos < 4096 and self.disk.supported:
            return  # keep the sidecar's last reserve for the records that close gaps
        if self._record(self.pos, count, "open"):
            self.reported, self.reported_at = (self.pos, count), now

    def timeout(self) -> float | None:
        if not self.low:
            return None
        return max(0.0, self.retry_at - time.monotonic())

    def tick(self) -> None:
        """While dropping: is there space again?"""
        if not self.low or time.monotonic() < self.retry_at:
            return
        if self._renew(RESERVE):
            self.flush(final=True)
            # An open gap nothing was dropped into since its marker: close it at its count.
            if (
                not self.pending
                and self.reported is not None
                and self._record(self.reported[0], self.reported[1], "closed")
            ):
                self.reported = None
            if not self.pending and self.reported is None:
                self.low = False
                self.backoff = RETRY_FIRST
                return
        else:
            self.flush()  # at least report the running count
        self.backoff = min(RETRY_MAX, self.backoff * 2)
        self.retry_at = time.monotonic() + self.backoff

    def close(self) -> None:
        """End of input: what is left goes out now, or is counted as dropped."""
        if self.carry:
            carry, self.carry = self.carry, b""
            if not self.low and not self.pending:
                self.pos += (n := self._write(self.fd, carry))
                carry = carry[n:]
            if carry:
                self._drop(carry)
                if self.carry:  # still an unfinished marker: it never will be one
                    self._drop_count(len(self.carry))
                    self.carry = b""
        self.flush(final=True)
        if not self.pending and self.reported is not None:  # no gap stays open after us
            self._record(self.reported[0], self.reported[1], "closed")
        os.close(self.fd)
        os.close(self.gfd)

    def _drop_count(self, n: int) -> None:
        if self.pending and isinstance(self.pending[-1], int):
            self.pending[-1] += n
        else:
            self.pending.append(n)


def run(log_path: str, gaps_path: str) -> int:
    w = Writer(log_path, gaps_path)
    while True:
        # While the disk takes every byte, a plain blocking read (one system call per chunk, not
        # two); while dropping, select() wakes the writer to retry the disk with no output coming.
        ready: object = True
        if w.low:
            try:
                ready, _, _ = select.select([0], [], [], w.timeout())
            except InterruptedError:
                continue
        if ready:
            try:
                data = os.read(0, READ_SIZE)
            except InterruptedError:
                continue
            except BlockingIOError:  # an input set non-blocking: wait for it as before
                select.select([0], [], [])
                continue
            if not data:
                break
            w.feed(data)
        w.tick()
    w.close()
    return 0


# --- the writer host: one Python for every pane's writer ------------------------------------------
#
# A writer started by itself is a whole interpreter: ~4 MB of memory of its own per pane. The host
# is one writer process per tmux server (started by the daemon, living with tmux), that forks a
# child per pane instead: the children share the interpreter's pages with it, ~1 MB each of their
# own. The process tmux starts for a pane hands its input (tmux's end of the pipe) to the host over
# a Unix socket and exits; tmux keeps the pipe as long as anyone holds it. Any doubt — no host, a
# socket that is not ours, another version of this file, no answer — and it writes the log itself,
# as before. A pane's input is written by exactly one process: the child starts only once the
# process that handed it over says so, and that one writes itself only if it never said so.

_SELF = os.stat(__file__)
VERSION = f"{_SELF.st_mtime_ns}:{_SELF.st_size}"  # this file as installed: a host of another differs
HANDOFF_TIMEOUT = 5.0  # seconds the pane's process waits for the host's child to be ready
PARENT_CHECK = 2.0  # seconds between the host's looks at whether the tmux server still runs
_READY, _GO, _NO = b"R", b"G", b"N"


def _ours(st: os.stat_result) -> bool:
    return st.st_uid == os.getuid() and not st.st_mode & 0o077


def _peer_uid(sock: _socket.socket) -> int:
    creds = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)  # pid, uid, gid
    return int.from_bytes(creds[4:8], sys.byteorder)


def handoff(host: str, log_path: str, gaps_path: str) -> bool:
    """Hand this process's input to the host's child for this log: True once that child writes it."""
    try:
        if not (_ours(os.stat(os.path.dirname(host) or ".")) and _ours(os.lstat(host))):
            return False  # a directory or socket someone else could have put there
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        sock.settimeout(HANDOFF_TIMEOUT)
        sock.connect(host)
        if _peer_uid(sock) != os.getuid():
            return False
        message = "\0".join((VERSION, log_path, gaps_path)).encode("utf-8", "surrogateescape")
        fds = (0).to_bytes(4, sys.byteorder)
        sock.sendmsg([message], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        if sock.recv(1) != _READY:
            return False
        sock.sendall(_GO)
        return True
    except Exception:  # whatever went wrong (no SO_PEERCRED here, say): the writer writes itself
        return False
    finally:
        sock.close()


def serve(host: str) -> int:
    """The host: accept handed-over inputs on `host` and fork a writer for each, until killed."""
    import fcntl
    import gc
    import signal
    import socket  # the host's imports are shared with its children: socket's `accept` is fine here

    lock = os.open(host + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # a host is running already
    try:  # noqa: SIM105 - contextlib would add its imports to every writer's memory
        os.unlink(host)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)
    try:
        listener.bind(host)
    finally:
        os.umask(old_mask)
    listener.listen(64)
    listener.settimeout(PARENT_CHECK)
    parent = os.getppid()  # the tmux server: once it is gone, so is every pane to serve
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    gc.collect()
    gc.freeze()  # what the children share stays shared: the collector does not touch it
    while True:
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            if os.getppid() != parent:
                return 0
            continue
        except OSError:
            time.sleep(0.1)
            continue
        fds: list[int] = []
        try:
            conn.settimeout(HANDOFF_TIMEOUT)
            if _peer_uid(conn) != os.getuid():
                continue
            data, ancillary, _flags, _addr = conn.recvmsg(8192, _socket.CMSG_SPACE(4))
            for level, kind, payload in ancillary:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    fds += [
                        int.from_bytes(payload[i : i + 4], sys.byteorder)
                        for i in range(0, len(payload) // 4 * 4, 4)
                    ]
            parts = data.decode("utf-8", "surrogateescape").split("\0")
            if len(parts) != 3 or len(fds) != 1:
                continue
            if parts[0] != VERSION:
                conn.sendall(_NO)
                return 0  # a newer writer asks: this host is stale, the daemon starts another
            if os.fork() == 0:  # the child: this pane's writer, never back in this loop
                code = 1
                try:
                    os.close(lock)
                    listener.close()
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    code = _child(conn, fds[0], parts[1], parts[2])
                finally:
                    os._exit(code)
        except OSError:
            pass
        finally:
            for fd in fds:
                os.close(fd)
            conn.close()


def _child(conn: _socket.socket, fd: int, log_path: str, gaps_path: str) -> int:
    try:
        conn.sendall(_READY)
        if conn.recv(1) != _GO:
            return 0  # the pane's process writes the log itself
    except OSError:
        return 0
    finally:
        conn.close()
    os.dup2(fd, 0)
    os.close(fd)
    return run(log_path, gaps_path)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--host":
        sys.exit(serve(sys.argv[2]))
    if len(sys.argv) not in (3, 4):
        sys.stderr.write("usage: logwriter.py LOG GAPS [HOST] | logwriter.py --host HOST\n")
        sys.exit(2)
    if len(sys.argv) == 4 and handoff(sys.argv[3], sys.argv[1], sys.argv[2]):
        sys.exit(0)
    sys.exit(run(sys.argv[1], sys.argv[2]))
