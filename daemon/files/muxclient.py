"""A client of OpenSSH's ControlMaster protocol (PROTOCOL.mux, version 4), for side commands.

`ssh -S <ControlPath> host command` starts a process per call: exec, libcrypto, the config files,
then a few messages on the master's socket. That process was most of a side command's time
(`ssh -V` alone ~5 ms of a ~8 ms call). This module sends the same messages from the daemon:

    client -> master   HELLO(version 4)                      master -> client   HELLO(4)
    client -> master   NEW_SESSION(rid, tty no, command, environment) + stdin, stdout, stderr
                       (three file descriptors, one SCM_RIGHTS message each)
                                                             master -> client   SESSION_OPENED(rid, sid)
                                                             master -> client   EXIT_MESSAGE(sid, status)
                                                             master closes the socket

Each message is a uint32 length and a payload of uint32s and strings (uint32 length + bytes). The
master writes the command's output straight into the pipes it was given and closes them when the
channel closes; closing the socket early makes the master close the channel (what ending an
`ssh -S` client does). No EXIT_MESSAGE before the socket closes (the command was killed by a
signal, the connection died) is exit status 255, as `ssh -S` reports it.

What `ssh -S` would send besides the command (SendEnv, SetEnv, ForwardAgent, ForwardX11) comes
from the side client's own configuration (`ssh -G`, read once per channel by the caller).
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import os
import re
import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from sshkeep.common.rundir import peer_problem

VERSION = 4
MSG_HELLO = 0x00000001
C_NEW_SESSION = 0x10000002
S_PERMISSION_DENIED = 0x80000002
S_FAILURE = 0x80000003
S_EXIT_MESSAGE = 0x80000004
S_SESSION_OPENED = 0x80000006
S_TTY_ALLOC_FAIL = 0x80000008
NO_ESCAPE = 0xFFFFFFFF
MAX_MESSAGE = 256 * 1024  # the master's replies are a few bytes; anything huge is not a master
NO_EXIT_STATUS = 255


class MuxError(Exception):
    """The master could not be used: `started` says whether the command may have been sent."""

    def __init__(self, message: str, *, started: bool) -> None:
        super().__init__(message)
        self.started = started


class NoMaster(MuxError):
    """Nothing (or nothing of ours) listens on the control socket: the command never ran."""

    def __init__(self, message: str) -> None:
        super().__init__(message, started=False)


# --- wire format (pure) ---------------------------------------------------------------------------


def _u32(v: int) -> bytes:
    return struct.pack(">I", v)


def _string(v: bytes | str) -> bytes:
    raw = v.encode("utf-8", errors="surrogateescape") if isinstance(v, str) else v
    return _u32(len(raw)) + raw


def frame(payload: bytes) -> bytes:
    return _u32(len(payload)) + payload


def hello() -> bytes:
    return frame(_u32(MSG_HELLO) + _u32(VERSION))


@dataclass(frozen=True)
class SessionFlags:
    """What the side client's configuration asks of a new session besides its command."""

    env: tuple[str, ...] = ()  # NAME=value, SendEnv matches of our environment, then SetEnv
    forward_agent: bool = False
    forward_x11: bool = False


def new_session(rid: int, command: str, flags: SessionFlags, *, subsystem: bool = False) -> bytes:
    """NEW_SESSION for `command` (a subsystem's name with `subsystem`) with no tty (stdin,
    stdout, stderr follow as descriptors)."""
    body = (
        _u32(C_NEW_SESSION)
        + _u32(rid)
        + _string(b"")  # reserved
        + _u32(0)  # tty
        + _u32(int(flags.forward_x11))
        + _u32(int(flags.forward_agent))
        + _u32(int(subsystem))
        + _u32(NO_ESCAPE)
        + _string(b"")  # TERM: used with a tty only
        + _string(command)
        + b"".join(_string(e) for e in flags.env)
    )
    return frame(body)


@dataclass(frozen=True)
class Reply:
    """One message from the master: its type, the first uint32 after it, and what follows."""

    kind: int
    first: int | None
    rest: bytes

    def number(self) -> int | None:
        """The uint32 after `first` (EXIT_MESSAGE's status, SESSION_OPENED's session id)."""
        return struct.unpack(">I", self.rest[:4])[0] if len(self.rest) >= 4 else None

    def text(self) -> str:
        """The string after `first` (FAILURE's and PERMISSION_DENIED's reason)."""
        if len(self.rest) < 4:
            return ""
        n = struct.unpack(">I", self.rest[:4])[0]
        return self.rest[4 : 4 + n].decode("utf-8", errors="replace")


def parse_reply(payload: bytes) -> Reply:
    if len(payload) < 4:
        raise MuxError(f"a {len(payload)}-byte message from the master", started=True)
    kind = struct.unpack(">I", payload[:4])[0]
    first = struct.unpack(">I", payload[4:8])[0] if len(payload) >= 8 else None
    return Reply(kind, first, payload[8:])


def env_pattern(pattern: str) -> re.Pattern[str]:
    """ssh's match_pattern as a regex: `*` any run, `?` any one character, nothing else special."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def session_flags(config: str, environ: dict[str, str]) -> SessionFlags:
    """The flags `ssh -S` would send, from `ssh -G`'s output (`config`) and its environment."""
    send: list[str] = []
    setenv: list[str] = []
    agent = x11 = False
    for line in config.splitlines():
        key, _, value = line.partition(" ")
        if key == "sendenv":
            send.append(value)
        elif key == "setenv":
            setenv.append(value)
        elif key == "forwardagent":
            agent = value != "no"
        elif key == "forwardx11":
            x11 = value == "yes"
    patterns = [env_pattern(p) for p in send]
    env = [f"{k}={v}" for k, v in environ.items() if any(p.fullmatch(k) for p in patterns)]
    return SessionFlags(env=(*env, *setenv), forward_agent=agent, forward_x11=x11)


# --- the session ----------------------------------------------------------------------------------


class _Messages:
    """Framed messages read from the master's socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.loop = asyncio.get_running_loop()

    async def next(self) -> bytes | None:
        """The next message's payload; None once the master closed the socket."""
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if n > MAX_MESSAGE:
                    raise MuxError(f"a {n}-byte message from the master", started=True)
                if len(self.buf) >= 4 + n:
                    payload = bytes(self.buf[4 : 4 + n])
                    del self.buf[: 4 + n]
                    return payload
            try:
                chunk = await self.loop.sock_recv(self.sock, 65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return None
            self.buf += chunk


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


async def _send_fd(sock: socket.socket, fd: int) -> None:
    """One byte carrying `fd` (SCM_RIGHTS), as the master reads each descriptor."""
    loop = asyncio.get_running_loop()
    rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    while True:
        try:
            if sock.sendmsg([b"\0"], rights) == 1:
                return
        except BlockingIOError:
            pass
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_writer(sock.fileno(), _resolve, ready)
        try:
            await ready
        finally:
            loop.remove_writer(sock.fileno())


class MuxSession:
    """A command (or subsystem) running on a channel of the master, its streams the descriptors
    the master was given."""

    def __init__(self, sock: socket.socket, messages: _Messages, sid: int) -> None:
        self.sock = sock
        self._messages = messages
        self.sid = sid
        self._waiting = False

    async def wait(self) -> int:
        """The command's exit status once the master closes the socket (255 when none came);
        the socket is closed then."""
        status = NO_EXIT_STATUS
        self._waiting = True
        try:
            while (payload := await self._messages.next()) is not None:
                r = parse_reply(payload)
                if r.kind == S_EXIT_MESSAGE and r.first == self.sid:
                    got = r.number()
                    status = got if got is not None else NO_EXIT_STATUS
        except (OSError, MuxError):
            pass  # the socket broke: as if it closed
        finally:
            self._waiting = False
            self.sock.close()
        return status

    def close(self) -> None:
        """Hang up: the master closes the channel if it is still open. A `wait` in progress sees
        the end and closes the socket (closing it under a pending read would leave the event
        loop watching a descriptor number that the next open file may take)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        if not self._waiting:
            self.sock.close()


async def open_session(
    control: Path, command: str, flags: SessionFlags, fds: tuple[int, int, int], *, subsystem: bool = False
) -> MuxSession:
    """Run `command` on a new channel of the master at `control`, with stdin, stdout and stderr
    the descriptors `fds` (the caller closes its copies afterwards)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # not inheritable (PEP 446)
    sock.setblocking(False)
    try:
        try:
            await loop.sock_connect(sock, str(control))
        except OSError as exc:
            raise NoMaster(
                f"nothing answers on the control socket {control} ({exc.strerror or exc})"
            ) from exc
        problem = peer_problem(sock, control)
        if problem is not None:
            raise NoMaster(problem)
        messages = _Messages(sock)
        try:
            await loop.sock_sendall(sock, hello())
            payload = await messages.next()
        except OSError as exc:
            raise NoMaster(f"the master on {control} closed the connection ({exc})") from exc
        if payload is None:
            raise NoMaster(f"the master on {control} closed the connection before its hello")
        theirs = parse_reply(payload)
        if theirs.kind != MSG_HELLO or theirs.first != VERSION:
            raise MuxError(
                f"the master on {control} answered message {theirs.kind:#x}, version {theirs.first} "
                f"(expected a hello of version {VERSION})",
                started=False,
            )
        rid = 1
        try:
            await loop.sock_sendall(sock, new_session(rid, command, flags, subsystem=subsystem))
            for fd in fds:
                await _send_fd(sock, fd)
            payload = await messages.next()
        except OSError as exc:
            raise MuxError(f"the master on {control} went away ({exc})", started=True) from exc
        if payload is None:
            raise MuxError(f"the master on {control} closed the connection", started=True)
        r = parse_reply(payload)
        if r.kind in (S_FAILURE, S_PERMISSION_DENIED):
            raise MuxError(f"the master refused a new session: {r.text()}", started=False)
        if r.kind != S_SESSION_OPENED or r.first != rid:
            raise MuxError(f"unexpected answer {r.kind:#x} from the master", started=True)
        sid = r.number()
        return MuxSession(sock, messages, sid if sid is not None else 0)
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise


@dataclass(frozen=True)
class Piped:
    """A channel whose streams are new pipes: the master holds their far ends, these are ours."""

    mux: MuxSession
    stdin: int | None  # the write end of the command's input (None: it reads /dev/null)
    stdout: int
    stderr: int


async def open_piped(
    control: Path, command: str, flags: SessionFlags, *, stdin: bool = False, subsystem: bool = False
) -> Piped:
    """`open_session` with a new pipe for each stream (stdin /dev/null unless `stdin`). The master
    gets the far ends and holds its own copies, so each pipe ends when it closes the channel."""
    theirs: list[int] = []
    ours: list[int] = []
    try:
        if stdin:
            r, w = os.pipe()
            theirs.append(r)
            ours.append(w)
        else:
            theirs.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        for _ in ("stdout", "stderr"):
            r, w = os.pipe()
            ours.append(r)
            theirs.append(w)
        mux = await open_session(
            control, command, flags, (theirs[0], theirs[1], theirs[2]), subsystem=subsystem
        )
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return Piped(mux, ours[0] if stdin else None, ours[-2], ours[-1])


async def pipe_reader(fd: int, limit: int) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    """A StreamReader over the read end `fd` of a channel's pipe (the transport owns `fd`)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=limit)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    return reader, transport
