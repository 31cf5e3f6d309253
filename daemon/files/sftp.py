"""SFTP v3 (draft-ietf-secsh-filexfer-02): the wire protocol and an async client over one byte
stream: the pipes of a channel opened on an ssh master (the daemon's way), or of a subprocess
(OpenSSH's `sftp-server` itself, for tests; any `ssh -s … sftp`).

Only what file transfer needs is implemented: open/read/write/close, (l|f)stat, (f)setstat, mkdir,
remove, rename (atomic with `posix-rename@openssh.com`), realpath, and the OpenSSH extensions fsync,
statvfs and limits. Requests carry ids, so many may be in flight at once: reads and writes are pipelined.
The session side of the channel (which ssh to run, when to open and close it) is
daemon/files/sidechannel.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
import struct
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from sshkeep.daemon.files import muxclient

log = structlog.get_logger(__name__)


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
READ_LIMIT = 64 * 1024  # ssh's stderr (stdout goes to the framer, bounded by the requests in flight)
PIPE_SIZE = 1024 * 1024  # F_SETPIPE_SZ asks; the kernel caps it (fs.pipe-max-size)
F_SETPIPE_SZ = 1031
REQUEST_TIMEOUT = 60.0
OPEN_TIMEOUT = 20.0


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
    """Parses one SFTP packet payload (bytes, or a view into what ssh wrote); raises ChannelLost on a
    short packet."""

    def __init__(self, data: bytes | memoryview, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def _take(self, n: int) -> memoryview | bytes:
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
        return bytes(self._take(self.u32()))

    def view(self) -> memoryview:
        """A string's bytes without copying them (file data: the bulk of a transfer)."""
        return memoryview(self._take(self.u32()))

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
_HEAD = struct.Struct(">IB")
_WRITE_HEAD = struct.Struct(">IBII")  # length, type, id, handle length


class _Framer:
    """Cuts SFTP packets out of the bytes ssh writes as they arrive, without copying them when a
    packet lies within one read (a view into it) and with one join when it straddles reads.

    (An asyncio StreamReader copies every byte twice more: into its buffer and out of it.)"""

    def __init__(self, deliver: Callable[[Reply], None], fail: Callable[[str], None]) -> None:
        self._deliver = deliver
        self._fail = fail
        self._chunks: deque[memoryview] = deque()
        self._have = 0
        self.broken = False

    def feed(self, data: bytes) -> None:
        if self.broken or not data:
            return
        self._chunks.append(memoryview(data))
        self._have += len(data)
        while self._have >= 5:
            head = self._peek(5)
            length, ptype = _HEAD.unpack(head)
            if length < 1 or length > MAX_SANE_PACKET:
                self.broken = True
                self._chunks.clear()
                self._fail(
                    "the side channel does not speak SFTP (the remote login shell probably prints text "
                    "for non-interactive logins, e.g. in ~/.bashrc)"
                )
                return
            if self._have < 4 + length:
                return
            self._deliver((ptype, Reader(self._take(4 + length), 5)))

    def _peek(self, n: int) -> bytes | memoryview:
        first = self._chunks[0]
        if len(first) >= n:
            return first[:n]
        return b"".join(self._pieces(n, consume=False))

    def _take(self, n: int) -> bytes | memoryview:
        first = self._chunks[0]
        self._have -= n
        if len(first) > n:
            self._chunks[0] = first[n:]
            return first[:n]
        if len(first) == n:
            return self._chunks.popleft()
        return b"".join(self._pieces(n, consume=True))

    def _pieces(self, n: int, consume: bool) -> list[memoryview]:
        out: list[memoryview] = []
        i = 0
        while n > 0:
            chunk = self._chunks[0] if consume else self._chunks[i]
            if len(chunk) > n:
                out.append(chunk[:n])
                if consume:
                    self._chunks[0] = chunk[n:]
                n = 0
            else:
                out.append(chunk)
                n -= len(chunk)
                if consume:
                    self._chunks.popleft()
                else:
                    i += 1
        return out


class _Output:
    """Where the server's bytes go: a `_Framer` once attached (what arrives before is kept)."""

    def __init__(self) -> None:
        self._framer: _Framer | None = None
        self._on_eof: Callable[[], None] | None = None
        self._early: list[bytes] = []
        self._eof = False

    def attach(self, framer: _Framer, on_eof: Callable[[], None]) -> None:
        self._framer, self._on_eof = framer, on_eof
        for data in self._early:
            framer.feed(data)
        self._early.clear()
        if self._eof:
            on_eof()

    def output(self, data: bytes | str) -> None:
        if isinstance(data, str):
            raise TypeError("the side channel's pipes carry bytes")
        if self._framer is not None:
            self._framer.feed(data)
        else:
            self._early.append(data)

    def output_ended(self) -> None:
        self._eof = True
        if self._on_eof is not None:
            self._on_eof()


class _Protocol(asyncio.subprocess.SubprocessStreamProtocol, _Output):
    """A server subprocess's protocol: its stdout goes to the framer rather than to a
    StreamReader; stdin and stderr are asyncio's streams."""

    def __init__(self, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.subprocess.SubprocessStreamProtocol.__init__(self, limit=limit, loop=loop)
        _Output.__init__(self)

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd != 1:
            super().pipe_data_received(fd, data)
        else:
            self.output(data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.output_ended()
        super().pipe_connection_lost(fd, exc)


class _PipeOutput(asyncio.Protocol, _Output):
    """The read end of the pipe the ssh master writes the server's bytes into."""

    def __init__(self) -> None:
        _Output.__init__(self)

    def data_received(self, data: bytes) -> None:
        self.output(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.output_ended()


def _widen(fd: int) -> None:
    """Make a pipe to or from the server hold a whole window of requests: with the default 64 KiB,
    each 255 KiB reply takes several wake-ups of ssh and of the event loop."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_SIZE)


def _widen_pipes(proc: asyncio.subprocess.Process) -> None:
    transport = getattr(proc, "_transport", None)
    for fd in (0, 1):
        pipe = transport.get_pipe_transport(fd) if transport is not None else None
        f = pipe.get_extra_info("pipe") if pipe is not None else None
        if f is not None:
            _widen(f.fileno())


class _Carrier:
    """What carries the SFTP stream: requests written to `writer`, diagnostics read from `stderr`."""

    writer: asyncio.StreamWriter
    stderr: asyncio.StreamReader

    @property
    def running(self) -> bool:
        raise NotImplementedError

    async def end(self) -> None:
        """After the writer is closed: wait for the carrier to finish, forcing it if it does not."""
        raise NotImplementedError


class _Subprocess(_Carrier):
    """A server subprocess (`sftp-server` itself, or an `ssh -s … sftp`)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdin is not None and proc.stderr is not None
        self.proc = proc
        self.writer, self.stderr = proc.stdin, proc.stderr

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    async def end(self) -> None:
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.proc.wait(), 2.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.proc.wait(), 5.0)


class _MasterChannel(_Carrier):
    """A subsystem channel the daemon opened on an ssh master itself (daemon/files/muxclient.py),
    its three pipes handed to the master."""

    def __init__(
        self,
        mux: muxclient.MuxSession,
        writer: asyncio.StreamWriter,
        stderr: asyncio.StreamReader,
        transports: list[asyncio.BaseTransport],
    ) -> None:
        self.mux = mux
        self.writer, self.stderr = writer, stderr
        self._transports = transports
        self._closed = asyncio.ensure_future(mux.wait())

    @property
    def running(self) -> bool:
        return not self._closed.done()

    async def end(self) -> None:
        # The server exits at EOF on its input, and the master then closes the channel and the
        # socket; closing the socket ourselves makes the master close a channel still open.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._closed), 2.0)
        self.mux.close()
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(self._closed, 2.0)
        for t in self._transports:
            t.close()


async def _open_on_master(
    control: Path, flags: muxclient.SessionFlags, subsystem: str
) -> tuple[_MasterChannel, _PipeOutput]:
    """Open `subsystem` on a new channel of the master at `control`, over three new pipes."""
    loop = asyncio.get_running_loop()
    piped = await muxclient.open_piped(control, subsystem, flags, stdin=True, subsystem=True)
    mux = piped.mux
    assert piped.stdin is not None
    _widen(piped.stdin)
    _widen(piped.stdout)
    transports: list[asyncio.BaseTransport] = []
    try:
        w_transport, w_proto = await loop.connect_write_pipe(
            lambda: asyncio.streams.FlowControlMixin(loop), os.fdopen(piped.stdin, "wb", buffering=0)
        )
        transports.append(w_transport)
        writer = asyncio.StreamWriter(w_transport, w_proto, None, loop)
        out = _PipeOutput()
        out_t, _ = await loop.connect_read_pipe(lambda: out, os.fdopen(piped.stdout, "rb", buffering=0))
        transports.append(out_t)
        stderr, err_t = await muxclient.pipe_reader(piped.stderr, READ_LIMIT)
        transports.append(err_t)
    except BaseException:
        mux.close()
        for t in transports:
            t.close()
        raise
    return _MasterChannel(mux, writer, stderr, transports), out


class SftpClient:
    """An SFTP v3 client over one byte stream (a subprocess's pipes, or a channel opened on an ssh
    master); requests may run concurrently."""

    def __init__(self, carrier: _Carrier, label: str) -> None:
        self.carrier = carrier
        self.label = label
        self.extensions: dict[str, bytes] = {}
        self.read_chunk = DEFAULT_CHUNK
        self.write_chunk = DEFAULT_CHUNK
        self._next_id = 1
        self._pending: dict[int, asyncio.Future[Reply]] = {}
        self._early: asyncio.Queue[Reply | None] = asyncio.Queue()  # replies before the first request
        self._stderr_task: asyncio.Task[None] | None = None
        self._stderr = bytearray()
        self.lost: str | None = None

    # --- life -------------------------------------------------------------------------------------

    @classmethod
    async def start(cls, argv: Sequence[str], label: str, timeout: float = OPEN_TIMEOUT) -> SftpClient:
        """Spawn `argv` (an SFTP server, or an ssh running the sftp subsystem) and do the
        INIT/VERSION handshake."""
        loop = asyncio.get_running_loop()
        transport, proto = await loop.subprocess_exec(
            lambda: _Protocol(limit=READ_LIMIT, loop=loop),
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C to the daemon's group must not cut transfers
        )
        proc = asyncio.subprocess.Process(transport, proto, loop)
        _widen_pipes(proc)
        return await cls(_Subprocess(proc), label)._begin(proto, timeout)

    @classmethod
    async def on_master(
        cls, control: Path, flags: muxclient.SessionFlags, label: str, timeout: float = OPEN_TIMEOUT
    ) -> SftpClient:
        """Open the sftp subsystem on a channel of the ssh master at `control` (what
        `ssh -S <control> -s <host> sftp` would ask for, with `flags`), and do the handshake. The
        master's refusals raise `ChannelLost`, as a channel that closes does."""
        try:
            carrier, out = await _open_on_master(control, flags, "sftp")
        except muxclient.MuxError as exc:
            raise ChannelLost(str(exc)) from exc
        return await cls(carrier, label)._begin(out, timeout)

    async def _begin(self, out: _Output, timeout: float) -> SftpClient:
        out.attach(_Framer(self._arrived, self._lose), lambda: self._lose("the side channel closed"))
        self._stderr_task = asyncio.create_task(self._drain_stderr())
        try:
            await asyncio.wait_for(self._handshake(), timeout)
        except TimeoutError as exc:
            await self.close()
            raise ChannelLost(f"no SFTP answer within {timeout:g}s{self.stderr_note()}") from exc
        except ChannelLost as exc:
            await self.close()
            raise ChannelLost(f"{exc}{self.stderr_note()}") from exc
        if "limits@openssh.com" in self.extensions:
            with contextlib.suppress(SftpError, ChannelLost, TimeoutError):
                r = await self._call(FXP_EXTENDED, Writer().string("limits@openssh.com").bytes())
                max_packet, max_read, max_write = r.u64(), r.u64(), r.u64()
                cap = min(MAX_CHUNK, max_packet - 1024) if max_packet else MAX_CHUNK
                self.read_chunk = min(cap, max_read) if max_read else self.read_chunk
                self.write_chunk = min(cap, max_write) if max_write else self.write_chunk
        return self

    async def _handshake(self) -> None:
        self._write(packet(FXP_INIT, struct.pack(">I", 3)))
        reply = await self._early.get()
        if reply is None:
            raise ChannelLost(self.lost or "the side channel closed")
        ptype, r = reply
        if ptype != FXP_VERSION:
            raise ChannelLost(f"the SFTP server answered INIT with packet type {ptype}")
        r.u32()  # version: OpenSSH speaks 3; we use nothing newer
        while r.remaining:
            name = r.string().decode("utf-8", errors="replace")
            self.extensions[name] = r.string()

    async def _drain_stderr(self) -> None:
        with contextlib.suppress(Exception):
            while chunk := await self.carrier.stderr.read(4096):
                if len(self._stderr) < 8192:
                    self._stderr += chunk

    def stderr_note(self) -> str:
        text = self._stderr.decode("utf-8", errors="replace").strip()
        return f" (ssh said: {text[-500:]})" if text else ""

    @property
    def alive(self) -> bool:
        return self.lost is None and self.carrier.running

    async def close(self) -> None:
        """End the channel: EOF to the server, then make sure its carrier ends."""
        self._lose("closed")
        with contextlib.suppress(Exception):
            self.carrier.writer.close()
        await self.carrier.end()
        if self._stderr_task is not None:
            # ssh's last words (e.g. "subsystem request failed") may still be in the pipe.
            with contextlib.suppress(TimeoutError, Exception):
                await asyncio.wait_for(asyncio.shield(self._stderr_task), 1.0)
        task = self._stderr_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why
        self._early.put_nowait(None)
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_result(_LOST)

    # --- framing ----------------------------------------------------------------------------------

    def _write(self, data: bytes | memoryview) -> None:
        writer = self.carrier.writer
        if writer.is_closing():
            raise ChannelLost("the side channel's ssh is gone")
        writer.write(data)

    def _arrived(self, reply: Reply) -> None:
        """A packet from the server: the answer to the request with its id (VERSION has none)."""
        ptype, r = reply
        if ptype == FXP_VERSION:
            self._early.put_nowait(reply)
            return
        try:
            rid = r.u32()
        except ChannelLost as exc:
            self._lose(str(exc))
            return
        fut = self._pending.pop(rid, None)
        if fut is not None and not fut.done():
            fut.set_result((ptype, r))

    def _new_id(self) -> tuple[int, asyncio.Future[Reply]]:
        if self.lost is not None:
            raise ChannelLost(self.lost)
        rid = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        fut: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        return rid, fut

    def send(self, ptype: int, body: bytes) -> asyncio.Future[Reply]:
        """Send one request; the future resolves to its reply (or `_LOST`)."""
        rid, fut = self._new_id()
        self._write(packet(ptype, struct.pack(">I", rid) + body))
        return fut

    def send_write(self, handle: bytes, offset: int, data: memoryview) -> asyncio.Future[Reply]:
        """Send one WRITE: its header, then the data as it is (no copy into a packet)."""
        rid, fut = self._new_id()
        n = len(data)
        head = _WRITE_HEAD.pack(1 + 4 + 4 + len(handle) + 8 + 4 + n, FXP_WRITE, rid, len(handle))
        self._write(head + handle + struct.pack(">QI", offset, n))
        self._write(data)
        return fut

    async def drain(self) -> None:
        try:
            await self.carrier.writer.drain()
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
        fut = self.send_fsync(handle)
        if fut is not None:
            await self.drain()
            self._expect(await self.wait(fut), FXP_STATUS)

    def send_fsync(self, handle: bytes) -> asyncio.Future[Reply] | None:
        """Send an fsync@openssh.com for `handle` without waiting (None: the server has no fsync)."""
        if "fsync@openssh.com" not in self.extensions:
            return None
        return self.send(FXP_EXTENDED, Writer().string("fsync@openssh.com").string(handle).bytes())

    async def finish_upload(self, handle: bytes, attrs: Attrs | None) -> None:
        """fsetstat `attrs` (if any), fsync and close `handle`, sent together and answered in order
        (the server handles one request after the other): one round trip instead of three. The
        first failure is raised once every answer is in; the handle is closed either way."""
        futs: list[asyncio.Future[Reply]] = []
        if attrs is not None:
            futs.append(self.send(FXP_FSETSTAT, Writer().string(handle).attrs(attrs).bytes()))
        fsync = self.send_fsync(handle)
        if fsync is not None:
            futs.append(fsync)
        futs.append(self.send(FXP_CLOSE, Writer().string(handle).bytes()))
        await self.drain()
        first: SftpError | None = None
        for fut in futs:
            try:
                self._expect(await self.wait(fut), FXP_STATUS)
            except SftpError as exc:
                first = first or exc
        if first is not None:
            raise first

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
        end = offset + length
        return b"".join([v async for vs in self._pipelined(handle, offset, end, max(length, 1)) for v in vs])

    async def read_stream(self, handle: bytes, offset: int, piece: int) -> AsyncIterator[bytes]:
        """The file from `offset` to its end, in pieces of about `piece` bytes, in order.

        Up to `WINDOW` requests stay in flight across pieces, so the server keeps sending while
        the caller hashes or stores a piece."""
        async for views in self._pipelined(handle, offset, None, piece):
            yield b"".join(views)

    def read_views(self, handle: bytes, offset: int, piece: int) -> AsyncIterator[list[memoryview]]:
        """`read_stream` without joining: each piece is the replies' data as views (no copy), for a
        caller that writes them out with `os.writev` and hashes them one by one."""
        return self._pipelined(handle, offset, None, piece)

    async def _pipelined(
        self, handle: bytes, offset: int, end: int | None, piece: int
    ) -> AsyncIterator[list[memoryview]]:
        """Reads from `offset` to `end` (None: the end of the file) with up to `WINDOW` requests in
        flight, yielded in order in pieces of at least `piece` bytes (the last one may be shorter),
        each a list of views into the replies."""
        next_off = offset
        inflight: deque[tuple[int, int, asyncio.Future[Reply]]] = deque()
        parts: list[memoryview] = []
        held = 0
        prefix = Writer().string(handle).bytes()
        while True:
            while len(inflight) < WINDOW and (end is None or next_off < end):
                n = self.read_chunk if end is None else min(self.read_chunk, end - next_off)
                inflight.append((next_off, n, self.send(FXP_READ, prefix + struct.pack(">QI", next_off, n))))
                next_off += n
            if not inflight:
                break
            await self.drain()
            off, n, fut = inflight.popleft()
            rtype, r = await self.wait(fut)
            if rtype == FXP_STATUS:
                code, message = parse_status(r)
                if code != FX_EOF:
                    raise SftpError(code, message)
                break  # requests still in flight answer EOF too; nobody waits for them
            if rtype != FXP_DATA:
                raise ChannelLost(f"unexpected SFTP reply type {rtype} to READ")
            data = r.view()
            if data:
                parts.append(data)
                held += len(data)
            if len(data) < n:
                # A short read (pipes, /proc): ask again from where it stopped, in order.
                inflight.clear()
                next_off = off + len(data)
                if not data:
                    break
            if held >= piece:
                out, parts, held = parts, [], 0
                yield out
        if parts:
            yield parts

    def write_stream(self, handle: bytes, offset: int) -> PipelinedWrite:
        """A writer from `offset` on whose requests stay in flight across `send` calls."""
        return PipelinedWrite(self, handle, offset)

    async def write(self, handle: bytes, offset: int, data: bytes) -> None:
        """Write all of `data` at `offset`, pipelined."""
        stream = self.write_stream(handle, offset)
        await stream.send(data)
        await stream.finish()


class PipelinedWrite:
    """Consecutive writes to one handle with up to `WINDOW` requests in flight, across the pieces
    the caller hands over. A failed request raises its `SftpError` from a later `send` or from
    `finish`."""

    def __init__(self, client: SftpClient, handle: bytes, offset: int) -> None:
        self.client = client
        self.handle = handle
        self.offset = offset
        self._inflight: deque[asyncio.Future[Reply]] = deque()

    async def send(self, data: bytes | memoryview) -> None:
        c = self.client
        view = memoryview(data)
        pos = 0
        while pos < len(view):
            while len(self._inflight) >= WINDOW:
                c._expect(await c.wait(self._inflight.popleft()), FXP_STATUS)
            piece = view[pos : pos + c.write_chunk]
            self._inflight.append(c.send_write(self.handle, self.offset, piece))
            self.offset += len(piece)
            pos += len(piece)
            await c.drain()

    async def finish(self) -> None:
        """Wait until every write is acknowledged."""
        while self._inflight:
            self.client._expect(await self.client.wait(self._inflight.popleft()), FXP_STATUS)
