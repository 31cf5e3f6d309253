"""The per-session side channel: SFTP over the session's authenticated ssh ControlMaster socket.

Why SFTP and not a framed side shell: the SFTP subsystem moves exact bytes with no encoding step,
reports errors as status codes (no such file, permission denied) instead of text to parse, renames
atomically (`posix-rename@openssh.com`), and needs nothing on the remote host beyond the subsystem
OpenSSH enables by default (`internal-sftp` does not even start a login shell). A side shell would
depend on the remote shell's quoting rules and tools (base64, head -c, mv) and on a quiet ~/.bashrc.

One SFTP channel per session is opened lazily (`ssh -S <ControlPath> -s <dest> sftp`, a multiplexing
client of the pane's ssh, so password and 2FA sessions need no new login) and kept for reuse:
opening a channel costs a round trip plus, for an external sftp-server, a login shell start; once
open, a request costs a fraction of a millisecond. It is reopened if it dies (e.g. after a
reconnect) and closed when the session closes, dies or stays idle.

One trap shapes the design: an ssh master does not exit while any multiplexed channel is open, so
a side channel held open would keep the pane's ssh alive after the remote shell exits (`exit`
typed in the pane would leave a hung pane). When the master's own session ends, ssh leaves raw
mode on its terminal; a watcher polls the pane's tty (one tcgetattr per second while a channel is
open) and closes the side channel at once when it sees that, so the pane dies as it should.

The ssh argv of a side client is the session's own argv, minus what only the master may do
(ControlMaster=yes, LocalCommand, forwardings, -J), plus `-o ControlMaster=no -S <path>` and
`ProxyCommand=false`: if the master is gone, ssh would otherwise silently open a fresh connection
(a new login, impossible for password hosts); with it, the fallback fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import struct
import termios
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import structlog

from common.errors import RemoteError, SessionDisconnected, SessionNotFound, SessionNotReady, TmuxError
from daemon.session import Session

if TYPE_CHECKING:
    from daemon.manager import SessionManager

log = structlog.get_logger(__name__)

T = TypeVar("T")

# --- SFTP v3 (draft-ietf-secsh-filexfer-02) -----------------------------------------------------------

FXP_INIT = 1
FXP_VERSION = 2
FXP_OPEN = 3
FXP_CLOSE = 4
FXP_READ = 5
FXP_WRITE = 6
FXP_LSTAT = 7
FXP_FSTAT = 8
FXP_SETSTAT = 9
FXP_FSETSTAT = 10
FXP_REMOVE = 13
FXP_MKDIR = 14
FXP_REALPATH = 16
FXP_STAT = 17
FXP_RENAME = 18
FXP_STATUS = 101
FXP_HANDLE = 102
FXP_DATA = 103
FXP_NAME = 104
FXP_ATTRS = 105
FXP_EXTENDED = 200
FXP_EXTENDED_REPLY = 201

FX_OK = 0
FX_EOF = 1
FX_NO_SUCH_FILE = 2
FX_PERMISSION_DENIED = 3
FX_FAILURE = 4
FX_BAD_MESSAGE = 5
FX_NO_CONNECTION = 6
FX_CONNECTION_LOST = 7
FX_OP_UNSUPPORTED = 8

FXF_READ = 0x01
FXF_WRITE = 0x02
FXF_APPEND = 0x04
FXF_CREAT = 0x08
FXF_TRUNC = 0x10
FXF_EXCL = 0x20

ATTR_SIZE = 0x01
ATTR_UIDGID = 0x02
ATTR_PERMISSIONS = 0x04
ATTR_ACMODTIME = 0x08
ATTR_EXTENDED = 0x80000000

STATUS_NAMES = {
    FX_OK: "ok",
    FX_EOF: "end of file",
    FX_NO_SUCH_FILE: "no such file or directory",
    FX_PERMISSION_DENIED: "permission denied",
    FX_FAILURE: "failure",
    FX_BAD_MESSAGE: "bad message",
    FX_NO_CONNECTION: "no connection",
    FX_CONNECTION_LOST: "connection lost",
    FX_OP_UNSUPPORTED: "operation not supported",
}

# sftp-server refuses packets over 256 KiB; anything far larger is not SFTP at all (typically a
# ~/.bashrc that prints text before the server starts, read as a length).
MAX_PACKET = 256 * 1024
MAX_SANE_PACKET = 4 * MAX_PACKET
DEFAULT_CHUNK = 32 * 1024  # what every SFTP server accepts
MAX_CHUNK = 255 * 1024
WINDOW = 64  # requests in flight during a transfer
REQUEST_TIMEOUT = 60.0
OPEN_TIMEOUT = 20.0
IDLE_CLOSE = 120.0  # seconds an unused channel stays open
IDLE_CLOSE_BLIND = 5.0  # ... when the pane's tty cannot be watched
WATCH_INTERVAL = 1.0


class SftpError(Exception):
    """A non-OK SFTP status from the server."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message or STATUS_NAMES.get(code, f"status {code}"))
        self.code = code
        self.message = message or STATUS_NAMES.get(code, f"status {code}")


class ChannelLost(Exception):
    """The side channel died (ssh exited, master gone, protocol broken) before an answer came."""


class Writer:
    """Builds one SFTP packet payload."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def u8(self, v: int) -> Writer:
        self.parts.append(struct.pack(">B", v))
        return self

    def u32(self, v: int) -> Writer:
        self.parts.append(struct.pack(">I", v))
        return self

    def u64(self, v: int) -> Writer:
        self.parts.append(struct.pack(">Q", v))
        return self

    def string(self, v: bytes | str | memoryview) -> Writer:
        data = v.encode("utf-8") if isinstance(v, str) else bytes(v)
        self.parts.append(struct.pack(">I", len(data)))
        self.parts.append(data)
        return self

    def attrs(self, a: Attrs) -> Writer:
        self.parts.append(a.encode())
        return self

    def bytes(self) -> bytes:
        return b"".join(self.parts)


class Reader:
    """Parses one SFTP packet payload; raises ChannelLost on a short packet."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ChannelLost("malformed SFTP packet (too short)")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return int(self._take(1)[0])

    def u32(self) -> int:
        return int(struct.unpack(">I", self._take(4))[0])

    def u64(self) -> int:
        return int(struct.unpack(">Q", self._take(8))[0])

    def string(self) -> bytes:
        return self._take(self.u32())

    def text(self) -> str:
        return self.string().decode("utf-8", errors="replace")

    def attrs(self) -> Attrs:
        return Attrs.decode(self)

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


@dataclass
class Attrs:
    """SFTP v3 file attributes; None means absent."""

    size: int | None = None
    uid: int | None = None
    gid: int | None = None
    permissions: int | None = None
    atime: int | None = None
    mtime: int | None = None

    def encode(self) -> bytes:
        flags = 0
        w = Writer()
        if self.size is not None:
            flags |= ATTR_SIZE
            w.u64(self.size)
        if self.uid is not None and self.gid is not None:
            flags |= ATTR_UIDGID
            w.u32(self.uid).u32(self.gid)
        if self.permissions is not None:
            flags |= ATTR_PERMISSIONS
            w.u32(self.permissions)
        if self.atime is not None and self.mtime is not None:
            flags |= ATTR_ACMODTIME
            w.u32(self.atime).u32(self.mtime)
        return struct.pack(">I", flags) + w.bytes()

    @classmethod
    def decode(cls, r: Reader) -> Attrs:
        flags = r.u32()
        a = cls()
        if flags & ATTR_SIZE:
            a.size = r.u64()
        if flags & ATTR_UIDGID:
            a.uid, a.gid = r.u32(), r.u32()
        if flags & ATTR_PERMISSIONS:
            a.permissions = r.u32()
        if flags & ATTR_ACMODTIME:
            a.atime, a.mtime = r.u32(), r.u32()
        if flags & ATTR_EXTENDED:
            for _ in range(r.u32()):
                r.string()
                r.string()
        return a

    @property
    def is_dir(self) -> bool:
        return self.permissions is not None and stat.S_ISDIR(self.permissions)

    @property
    def is_link(self) -> bool:
        return self.permissions is not None and stat.S_ISLNK(self.permissions)

    @property
    def is_regular(self) -> bool:
        return self.permissions is None or stat.S_ISREG(self.permissions)

    @property
    def mode(self) -> int | None:
        """Permission bits (incl. setuid/setgid/sticky), without the file type."""
        return None if self.permissions is None else stat.S_IMODE(self.permissions)


def packet(ptype: int, payload: bytes) -> bytes:
    """Frame one packet: uint32 length, byte type, payload."""
    return struct.pack(">IB", len(payload) + 1, ptype) + payload


def parse_status(r: Reader) -> tuple[int, str]:
    """(code, message) of a STATUS payload positioned after the request id."""
    code = r.u32()
    message = r.text() if r.remaining >= 4 else ""
    return code, message


Reply = tuple[int, Reader]
_LOST: Reply = (-1, Reader(b""))


class SftpClient:
    """An SFTP v3 client over one ssh subprocess's pipes; requests may run concurrently."""

    def __init__(self, proc: asyncio.subprocess.Process, label: str) -> None:
        self.proc = proc
        self.label = label
        self.extensions: dict[str, bytes] = {}
        self.read_chunk = DEFAULT_CHUNK
        self.write_chunk = DEFAULT_CHUNK
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr = bytearray()
        self.lost: str | None = None

    # --- life -------------------------------------------------------------------------------------

    @classmethod
    async def start(cls, argv: Sequence[str], label: str, timeout: float = OPEN_TIMEOUT) -> SftpClient:
        """Spawn `argv` (an ssh running the sftp subsystem) and do the INIT/VERSION handshake."""
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C to the daemon's group must not cut transfers
        )
        client = cls(proc, label)
        client._stderr_task = asyncio.create_task(client._drain_stderr())
        try:
            await asyncio.wait_for(client._handshake(), timeout)
        except TimeoutError as exc:
            await client.close()
            raise ChannelLost(f"no SFTP answer within {timeout:g}s{client.stderr_note()}") from exc
        except ChannelLost as exc:
            await client.close()
            raise ChannelLost(f"{exc}{client.stderr_note()}") from exc
        client._reader = asyncio.create_task(client._read_loop(), name=f"sftp-{label}")
        if "limits@openssh.com" in client.extensions:
            with contextlib.suppress(SftpError, ChannelLost, TimeoutError):
                r = await client._call(FXP_EXTENDED, Writer().string("limits@openssh.com").bytes())
                max_packet, max_read, max_write = r.u64(), r.u64(), r.u64()
                cap = min(MAX_CHUNK, max_packet - 1024) if max_packet else MAX_CHUNK
                client.read_chunk = min(cap, max_read) if max_read else client.read_chunk
                client.write_chunk = min(cap, max_write) if max_write else client.write_chunk
        return client

    async def _handshake(self) -> None:
        self._write(packet(FXP_INIT, struct.pack(">I", 3)))
        ptype, r = await self._read_packet()
        if ptype != FXP_VERSION:
            raise ChannelLost(f"the SFTP server answered INIT with packet type {ptype}")
        r.u32()  # version: OpenSSH speaks 3; we use nothing newer
        while r.remaining:
            name = r.string().decode("utf-8", errors="replace")
            self.extensions[name] = r.string()

    async def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        with contextlib.suppress(Exception):
            while chunk := await self.proc.stderr.read(4096):
                if len(self._stderr) < 8192:
                    self._stderr += chunk

    def stderr_note(self) -> str:
        text = self._stderr.decode("utf-8", errors="replace").strip()
        return f" (ssh said: {text[-500:]})" if text else ""

    @property
    def alive(self) -> bool:
        return self.lost is None and self.proc.returncode is None

    async def close(self) -> None:
        """End the channel: EOF to the server, then make sure the ssh client exits."""
        self._lose("closed")
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 5.0)
        if self._stderr_task is not None:
            # ssh's last words (e.g. "subsystem request failed") may still be in the pipe.
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        for task in (self._reader, self._stderr_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_result(_LOST)

    # --- framing ----------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if self.proc.stdin is None or self.proc.stdin.is_closing():
            raise ChannelLost("the side channel's ssh is gone")
        self.proc.stdin.write(data)

    async def _read_packet(self) -> Reply:
        assert self.proc.stdout is not None
        try:
            head = await self.proc.stdout.readexactly(5)
        except asyncio.IncompleteReadError as exc:
            raise ChannelLost("the side channel closed") from exc
        length, ptype = struct.unpack(">IB", head)
        if length < 1 or length > MAX_SANE_PACKET:
            raise ChannelLost(
                "the side channel does not speak SFTP (the remote login shell probably prints text "
                "for non-interactive logins, e.g. in ~/.bashrc)"
            )
        try:
            body = await self.proc.stdout.readexactly(length - 1)
        except asyncio.IncompleteReadError as exc:
            raise ChannelLost("the side channel closed mid-packet") from exc
        return ptype, Reader(body)

    async def _read_loop(self) -> None:
        why = "the side channel closed"
        try:
            while True:
                ptype, r = await self._read_packet()
                rid = r.u32()
                fut = self._pending.pop(rid, None)
                if fut is not None and not fut.done():
                    fut.set_result((ptype, r))
        except ChannelLost as exc:
            why = str(exc)
        except asyncio.CancelledError:
            why = "closed"
            raise
        except Exception as exc:  # a reader that dies silently would hang every caller
            why = f"side channel reader failed: {exc}"
            log.exception("sftp_reader_failed", channel=self.label)
        finally:
            self._lose(why)

    def send(self, ptype: int, body: bytes) -> asyncio.Future[Reply]:
        """Send one request; the future resolves to its reply (or `_LOST`)."""
        if self.lost is not None:
            raise ChannelLost(self.lost)
        rid = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._write(packet(ptype, struct.pack(">I", rid) + body))
        return fut

    async def drain(self) -> None:
        if self.proc.stdin is not None:
            try:
                await self.proc.stdin.drain()
            except (ConnectionError, BrokenPipeError) as exc:
                raise ChannelLost("the side channel's ssh is gone") from exc

    async def wait(self, fut: asyncio.Future[Reply], timeout: float = REQUEST_TIMEOUT) -> Reply:
        try:
            reply = await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError as exc:
            self._lose(f"no SFTP answer within {timeout:g}s")
            raise ChannelLost(f"the side channel did not answer within {timeout:g}s") from exc
        if reply is _LOST:
            raise ChannelLost((self.lost or "the side channel closed") + self.stderr_note())
        return reply

    async def _call(self, ptype: int, body: bytes) -> Reader:
        """One request: return the reply payload; raise SftpError for a non-OK status."""
        fut = self.send(ptype, body)
        await self.drain()
        rtype, r = await self.wait(fut)
        if rtype == FXP_STATUS:
            code, message = parse_status(r)
            if code != FX_OK:
                raise SftpError(code, message)
        return r

    @staticmethod
    def _expect(reply: Reply, want: int) -> Reader:
        rtype, r = reply
        if rtype == FXP_STATUS:
            code, message = parse_status(r)
            if code != FX_OK or want != FXP_STATUS:
                raise SftpError(code, message)
        elif rtype != want:
            raise ChannelLost(f"unexpected SFTP reply type {rtype} (wanted {want})")
        return r

    async def _request(self, ptype: int, body: bytes, want: int) -> Reader:
        fut = self.send(ptype, body)
        await self.drain()
        return self._expect(await self.wait(fut), want)

    # --- operations -------------------------------------------------------------------------------

    async def open(self, path: str, flags: int, attrs: Attrs | None = None) -> bytes:
        body = Writer().string(path).u32(flags).attrs(attrs or Attrs()).bytes()
        return (await self._request(FXP_OPEN, body, FXP_HANDLE)).string()

    async def close_handle(self, handle: bytes) -> None:
        await self._request(FXP_CLOSE, Writer().string(handle).bytes(), FXP_STATUS)

    async def stat(self, path: str) -> Attrs:
        return (await self._request(FXP_STAT, Writer().string(path).bytes(), FXP_ATTRS)).attrs()

    async def lstat(self, path: str) -> Attrs:
        return (await self._request(FXP_LSTAT, Writer().string(path).bytes(), FXP_ATTRS)).attrs()

    async def fstat(self, handle: bytes) -> Attrs:
        return (await self._request(FXP_FSTAT, Writer().string(handle).bytes(), FXP_ATTRS)).attrs()

    async def setstat(self, path: str, attrs: Attrs) -> None:
        await self._request(FXP_SETSTAT, Writer().string(path).attrs(attrs).bytes(), FXP_STATUS)

    async def fsetstat(self, handle: bytes, attrs: Attrs) -> None:
        await self._request(FXP_FSETSTAT, Writer().string(handle).attrs(attrs).bytes(), FXP_STATUS)

    async def remove(self, path: str) -> None:
        await self._request(FXP_REMOVE, Writer().string(path).bytes(), FXP_STATUS)

    async def mkdir(self, path: str, attrs: Attrs | None = None) -> None:
        body = Writer().string(path).attrs(attrs or Attrs()).bytes()
        await self._request(FXP_MKDIR, body, FXP_STATUS)

    async def rename(self, old: str, new: str) -> None:
        """Rename, replacing `new` atomically when the server has posix-rename (OpenSSH does)."""
        if "posix-rename@openssh.com" in self.extensions:
            body = Writer().string("posix-rename@openssh.com").string(old).string(new).bytes()
            await self._request(FXP_EXTENDED, body, FXP_STATUS)
        else:
            await self._request(FXP_RENAME, Writer().string(old).string(new).bytes(), FXP_STATUS)

    async def realpath(self, path: str) -> str:
        r = await self._request(FXP_REALPATH, Writer().string(path).bytes(), FXP_NAME)
        if r.u32() < 1:
            raise SftpError(FX_FAILURE, "realpath returned no name")
        return r.string().decode("utf-8", errors="surrogateescape")

    async def fsync(self, handle: bytes) -> None:
        if "fsync@openssh.com" in self.extensions:
            body = Writer().string("fsync@openssh.com").string(handle).bytes()
            await self._request(FXP_EXTENDED, body, FXP_STATUS)

    async def free_bytes(self, path: str) -> int | None:
        """Bytes available to us on the filesystem holding `path` (statvfs), or None."""
        if "statvfs@openssh.com" not in self.extensions:
            return None
        body = Writer().string("statvfs@openssh.com").string(path).bytes()
        try:
            r = await self._request(FXP_EXTENDED, body, FXP_EXTENDED_REPLY)
        except SftpError:
            return None
        _bsize, frsize, _blocks, _bfree, bavail = (r.u64() for _ in range(5))
        return frsize * bavail

    async def read(self, handle: bytes, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset`, pipelined; fewer only at end of file."""
        out = bytearray()
        end = offset + length
        next_off = offset
        inflight: deque[tuple[int, int, asyncio.Future[Reply]]] = deque()
        while True:
            while len(inflight) < WINDOW and next_off < end:
                n = min(self.read_chunk, end - next_off)
                body = Writer().string(handle).u64(next_off).u32(n).bytes()
                inflight.append((next_off, n, self.send(FXP_READ, body)))
                next_off += n
            if not inflight:
                break
            await self.drain()
            off, n, fut = inflight.popleft()
            rtype, r = await self.wait(fut)
            if rtype == FXP_STATUS:
                code, message = parse_status(r)
                if code == FX_EOF:
                    break  # requests still in flight answer EOF too; nobody waits for them
                raise SftpError(code, message)
            if rtype != FXP_DATA:
                raise ChannelLost(f"unexpected SFTP reply type {rtype} to READ")
            data = r.string()
            out += data
            if len(data) < n:
                # A short read (pipes, /proc): ask again from where it stopped, in order.
                inflight.clear()
                next_off = off + len(data)
        return bytes(out)

    async def write(self, handle: bytes, offset: int, data: bytes) -> None:
        """Write all of `data` at `offset`, pipelined."""
        view = memoryview(data)
        inflight: deque[asyncio.Future[Reply]] = deque()
        pos = 0
        while pos < len(view) or inflight:
            while pos < len(view) and len(inflight) < WINDOW:
                piece = view[pos : pos + self.write_chunk]
                body = Writer().string(handle).u64(offset + pos).string(piece).bytes()
                inflight.append(self.send(FXP_WRITE, body))
                pos += len(piece)
                await self.drain()
            self._expect(await self.wait(inflight.popleft()), FXP_STATUS)


# --- ssh argv -------------------------------------------------------------------------------------

# ssh options that take an argument (from ssh(1)'s getopt string).
_WITH_ARG = set("BbcDEeFIiJLlmOopQRSWw")
# Flags a side client must not inherit: master-only, forwarding, mode and verbosity flags.
_DROP_WITH_ARG = set("DEJLOQRSWw")
_DROP_NO_ARG = set("fGMNnsTtVv")
# -o keys (lowercase) that belong to the master or would change what a side client does.
_DROP_OPTIONS = frozenset(
    {
        "controlmaster",
        "controlpath",
        "controlpersist",
        "permitlocalcommand",
        "localcommand",
        "proxyjump",
        "proxycommand",
        "localforward",
        "remoteforward",
        "dynamicforward",
        "requesttty",
        "remotecommand",
        "sessiontype",
        "stdinnull",
        "forkafterauthentication",
        "loglevel",
        "batchmode",
        "clearallforwardings",
        "exitonforwardfailure",
    }
)


def _option_key(value: str) -> str:
    return value.replace("=", " ", 1).split(" ", 1)[0].strip().lower()


def split_ssh_argv(argv: Sequence[str]) -> tuple[list[str], str | None, str | None]:
    """(options kept for a side client, destination, ControlPath) from a session's ssh argv."""
    args = list(argv[1:]) if argv and not argv[0].startswith("-") else list(argv)
    kept: list[str] = []
    control_path: str | None = None
    dest: str | None = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            dest = args[i + 1] if i + 1 < len(args) else None
            break
        if not a.startswith("-") or a == "-":
            dest = a  # ssh stops at the destination; the rest would be a command
            break
        j = 1
        while j < len(a):
            flag = a[j]
            if flag in _WITH_ARG:
                if j + 1 < len(a):
                    value = a[j + 1 :]
                else:
                    i += 1
                    value = args[i] if i < len(args) else ""
                if flag == "o":
                    key = _option_key(value)
                    if key == "controlpath" and control_path is None:
                        control_path = value.replace("=", " ", 1).split(" ", 1)[1].strip()
                    if key not in _DROP_OPTIONS:
                        kept += ["-o", value]
                elif flag == "S":
                    control_path = control_path or value
                elif flag not in _DROP_WITH_ARG:
                    kept += [f"-{flag}", value]
                break
            if flag not in _DROP_NO_ARG:
                kept.append(f"-{flag}")
            j += 1
        i += 1
    return kept, dest, control_path


def side_argv(control_path: str, options: Sequence[str], dest: str, *, subsystem: str | None = None,
              command: str | None = None) -> list[str]:  # fmt: skip
    """argv of a multiplexing client of the master at `control_path` that cannot log in itself."""
    argv = [
        "ssh",
        "-S", control_path,
        "-o", "ControlMaster=no",
        # If the master is gone ssh falls back to connecting itself: make that fail at once.
        "-o", "ProxyCommand=false",
        "-o", "BatchMode=yes",
        "-o", "ClearAllForwardings=yes",
        "-o", "PermitLocalCommand=no",
        "-o", "RemoteCommand=none",
        "-o", "RequestTTY=no",
        "-o", "LogLevel=ERROR",
        *options,
    ]  # fmt: skip
    if subsystem is not None:
        return [*argv, "-s", "--", dest, subsystem]
    return [*argv, "--", dest, command or ""]


# ssh's own words when the multiplexing client could not reach the master (then it tried to connect
# by itself through ProxyCommand=false, which fails like this).
_NO_MASTER_WORDS = (
    "kex_exchange_identification",
    "Connection closed by UNKNOWN",
    "mux_client",
    "Control socket",
    "ControlSocket",
    "master hello",
    "Session open refused",
)


def looks_like_no_master(stderr: str) -> bool:
    return any(w in stderr for w in _NO_MASTER_WORDS)


def tty_is_raw(path: str) -> bool | None:
    """Whether the tty at `path` is in raw mode (ICANON off); None when it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        lflag = termios.tcgetattr(fd)[3]
    except termios.error:
        return None
    finally:
        os.close(fd)
    return not (int(lflag) & termios.ICANON)


# --- channels per session -----------------------------------------------------------------------------


@dataclass
class SideChannel:
    """The SFTP channel of one session (opened lazily, reopened when dead)."""

    session: Session
    control_path: Path
    options: list[str]
    dest: str
    client: SftpClient | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = field(default_factory=time.monotonic)
    busy: int = 0
    tty: str | None = None
    tty_was_raw: bool | None = None
    opened: int = 0
    # The session nonce when the remote shell was seen exiting (a reconnect changes the nonce).
    released_nonce: str | None = None

    def argv(self, *, subsystem: str | None = None, command: str | None = None) -> list[str]:
        return side_argv(
            str(self.control_path), self.options, self.dest, subsystem=subsystem, command=command
        )

    async def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            await client.close()
            log.info("side_channel_closed", session=self.session.id)


class SideChannels:
    """Every session's side channel in one daemon, and the watcher that closes them in time."""

    def __init__(self, manager: SessionManager) -> None:
        self.manager = manager
        self.channels: dict[str, SideChannel] = {}
        self._watch: asyncio.Task[None] | None = None

    # --- master ------------------------------------------------------------------------------------

    def require_master(self, s: Session) -> SideChannel:
        """The session's channel record, after checking that its ssh master can be used."""
        if s.closed or self.manager.sessions.get(s.id) is not s:
            raise SessionNotFound(f"session {s.id} is closed")
        if s.dead:
            raise SessionDisconnected(
                f"session {s.id} is disconnected, so there is no ssh connection to reuse for files "
                "or side commands",
                hint="Call reconnect_session to start a fresh ssh in this session, or close_session.",
            )
        kept, dest, cpath = split_ssh_argv(s.ssh_argv)
        control = Path(cpath) if cpath else self.manager.paths.control_dir / s.id
        ch = self.channels.get(s.id)
        if ch is None or ch.session is not s or ch.control_path != control:
            ch = SideChannel(session=s, control_path=control, options=kept, dest=dest or s.target)
            old = self.channels.get(s.id)
            if old is not None and old.client is not None:
                asyncio.get_running_loop().create_task(old.close())
            self.channels[s.id] = ch
        if ch.released_nonce is not None and ch.released_nonce == s.nonce:
            raise SessionDisconnected(
                f"the remote shell of session {s.id} has exited and its ssh connection is closing",
                hint="Call reconnect_session to start a fresh ssh in this session, or close_session.",
            )
        if not control.exists():
            if not s.authenticated:
                raise SessionNotReady(
                    f"session {s.id} is not logged in yet, so it has no ssh master connection for "
                    "files or side commands",
                    hint="Answer the login prompt with send_keys (get_snapshot shows it), then retry.",
                )
            raise SessionNotReady(
                f"session {s.id} has no ssh master connection (no control socket at {control}); "
                "files and side commands need one",
                hint="reconnect_session (after ssh exits) starts one; meanwhile send_command works in "
                "the terminal.",
            )
        return ch

    # --- the SFTP channel ------------------------------------------------------------------------

    async def sftp(self, ch: SideChannel) -> SftpClient:
        """The channel's live SFTP client, opened (or reopened) on demand."""
        async with ch.lock:
            if ch.client is not None and ch.client.alive:
                return ch.client
            if ch.client is not None:
                await ch.close()
            started = time.monotonic()
            try:
                client = await SftpClient.start(ch.argv(subsystem="sftp"), ch.session.id)
            except ChannelLost as exc:
                if not ch.control_path.exists() or ch.session.dead:
                    raise SessionDisconnected(
                        f"session {ch.session.id} lost its ssh connection while opening the side "
                        f"channel: {exc}"
                    ) from exc
                raise RemoteError(
                    f"could not open an SFTP channel over session {ch.session.id}'s connection: {exc}",
                    hint="The host needs the SFTP subsystem (OpenSSH has it by default); "
                    "exec_command and send_command still work.",
                ) from exc
            except OSError as exc:
                raise RemoteError(f"could not start ssh for the side channel: {exc}") from exc
            ch.client = client
            ch.opened += 1
            # Asked at every open: a respawned pane (reconnect) gets a new tty.
            ch.tty = None
            with contextlib.suppress(TmuxError):
                out = await self.manager.tmux.command(
                    f"display-message -p -t {ch.session.pane_id} '#{{pane_tty}}'"
                )
                ch.tty = out[0].strip() if out and out[0].strip() else None
            ch.tty_was_raw = tty_is_raw(ch.tty) if ch.tty else None
            log.info(
                "side_channel_opened",
                session=ch.session.id,
                ms=round((time.monotonic() - started) * 1000, 1),
                extensions=sorted(client.extensions),
            )
            self._ensure_watch()
            return client

    async def run(self, s: Session, fn: Callable[[SftpClient], Awaitable[T]], *, retry: bool = True) -> T:
        """Run `fn` on the session's SFTP channel; if the channel dies under it, reopen once and
        run it again (only when `retry`: a write is not repeated blindly)."""
        for attempt in (1, 2):
            ch = self.require_master(s)
            ch.busy += 1
            try:
                client = await self.sftp(ch)
                ch.last_used = time.monotonic()
                return await fn(client)
            except ChannelLost as exc:
                await ch.close()
                if attempt == 2 or not retry:
                    raise RemoteError(
                        f"the side channel of session {s.id} closed during the operation: {exc}",
                        hint="Retry; if the session disconnected, reconnect_session first.",
                    ) from exc
            finally:
                ch.busy -= 1
                ch.last_used = time.monotonic()
        raise AssertionError("unreachable")

    # --- watcher ----------------------------------------------------------------------------------

    def _ensure_watch(self) -> None:
        if self._watch is None or self._watch.done():
            self._watch = asyncio.get_running_loop().create_task(self._watch_loop(), name="side-channels")

    async def _watch_loop(self) -> None:
        while any(ch.client is not None for ch in self.channels.values()):
            await asyncio.sleep(WATCH_INTERVAL)
            for sid, ch in list(self.channels.items()):
                try:
                    await self._check(sid, ch)
                except Exception:
                    log.exception("side_channel_watch_failed", session=sid)

    async def _check(self, sid: str, ch: SideChannel) -> None:
        s = ch.session
        gone = s.closed or s.dead or self.manager.sessions.get(sid) is not s
        if gone:
            await ch.close()
            if self.channels.get(sid) is ch:
                del self.channels[sid]
            return
        if ch.client is None:
            return
        if not ch.client.alive:
            await ch.close()
            return
        if ch.busy:
            return
        raw = tty_is_raw(ch.tty) if ch.tty else None
        if raw is False and ch.tty_was_raw:
            # The master left raw mode: its own session ended. Let it exit (see module doc).
            log.info("side_channel_released", session=sid, reason="remote shell exited")
            ch.released_nonce = s.nonce
            await ch.close()
            return
        idle = IDLE_CLOSE if ch.tty_was_raw else IDLE_CLOSE_BLIND
        if time.monotonic() - ch.last_used > idle:
            await ch.close()

    async def close_all(self) -> None:
        for ch in list(self.channels.values()):
            await ch.close()
        self.channels.clear()
        if self._watch is not None:
            self._watch.cancel()


_REGISTRIES: weakref.WeakKeyDictionary[SessionManager, SideChannels] = weakref.WeakKeyDictionary()


def channels(manager: SessionManager) -> SideChannels:
    """The side-channel registry of this daemon's manager."""
    reg = _REGISTRIES.get(manager)
    if reg is None:
        reg = _REGISTRIES[manager] = SideChannels(manager)
    return reg


# --- side commands ------------------------------------------------------------------------------------


@dataclass
class ExecOutcome:
    """What a side command did: exit status and its two streams (each capped)."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool
    stderr_truncated: bool
    timed_out: bool
    seconds: float


@dataclass
class _Capture:
    cap: int
    buf: bytearray = field(default_factory=bytearray)
    dropped: bool = False

    async def pump(self, stream: asyncio.StreamReader | None) -> None:
        """Read `stream` to its end, keeping at most `cap` bytes."""
        if stream is None:
            return
        while chunk := await stream.read(65536):
            room = self.cap - len(self.buf)
            if room > 0:
                self.buf += chunk[:room]
            if len(chunk) > room:
                self.dropped = True  # keep reading: a full pipe would stall the remote command


async def run_side_command(
    reg: SideChannels, s: Session, command: str, timeout: float, cap: int
) -> ExecOutcome:
    """Run `command` on an exec channel of the session's master: stdin empty, no tty, no pane."""
    ch = reg.require_master(s)
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *ch.argv(command=command),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise RemoteError(f"could not start ssh for a side command: {exc}") from exc
    out, err = _Capture(cap), _Capture(cap)
    tasks = [
        asyncio.create_task(out.pump(proc.stdout)),
        asyncio.create_task(err.pump(proc.stderr)),
        asyncio.create_task(proc.wait()),
    ]
    try:
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        # Output still open after ssh exited (a remote background job holding it) is not a timeout.
        timed_out = tasks[2] in pending
    finally:
        if proc.returncode is None:
            # Ending the multiplexing client makes the master close the channel.
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 3.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for t in tasks:
            if not t.done():
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
    stderr_text = err.buf.decode("utf-8", errors="replace")
    if not timed_out and proc.returncode == 255 and looks_like_no_master(stderr_text):
        if s.dead or not ch.control_path.exists():
            raise SessionDisconnected(f"session {s.id} lost its ssh connection; the command did not run")
        raise RemoteError(
            f"the side command could not use session {s.id}'s ssh connection: {stderr_text.strip()[-500:]}"
        )
    return ExecOutcome(
        exit_code=None if timed_out else proc.returncode,
        stdout=bytes(out.buf),
        stderr=bytes(err.buf),
        stdout_truncated=out.dropped,
        stderr_truncated=err.dropped,
        timed_out=timed_out,
        seconds=time.monotonic() - started,
    )
