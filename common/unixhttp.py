"""HTTP/1.1 over the daemon's Unix socket, standard library only.

The API client (`sshkeep.common.client`) sends every call through a `Pool` of keep-alive asyncio
connections; `sshkeep status` makes one blocking `call` without an event loop. Both frame
requests and parse replies here. The daemon (aiohttp) answers every API call with a
Content-Length body; chunked bodies and bodies ended by closing the connection are read too.

Nothing here knows the API: a transport failure raises `HttpUnavailable` (the caller says which
daemon did not answer), and any status comes back as a `Response`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

MAX_HEAD = 64 * 1024
# A connection idle this long is not reused: the server (aiohttp: 75 s) may be closing it just now,
# and a request sent into a closing connection cannot be told apart from one the server lost.
REUSE_IDLE_SECONDS = 30.0

# Called with each new connection's socket before anything is sent on it; raises to refuse it.
ConnectionCheck = Callable[[socket.socket], None]


class HttpUnavailable(Exception):
    """The socket could not be reached, or the connection broke before a whole reply came."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def request_bytes(
    method: str, target: str, body: bytes | None, headers: dict[str, str] | None = None
) -> bytes:
    """One request's bytes (Host: localhost, as over any Unix socket)."""
    lines = [f"{method} {target} HTTP/1.1", "Host: localhost"]
    for name, value in (headers or {}).items():
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(f"{name}: {value}")
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head + body if body else head


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers (names lower-cased) of a reply's head, which ends with CRLF CRLF."""
    text = head.decode("latin-1")
    status_line, _, rest = text.partition("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpUnavailable(f"not an HTTP reply: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in rest.split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpUnavailable(f"bad header line in the reply: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def _keeps_alive(headers: dict[str, str]) -> bool:
    return "close" not in headers.get("connection", "").lower()


def _content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise HttpUnavailable(f"bad Content-Length in the reply: {value!r}")
    return int(value)


def _chunked(headers: dict[str, str]) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower()


# --- asyncio ----------------------------------------------------------------------------------------


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = time.monotonic()

    def usable(self) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < REUSE_IDLE_SECONDS
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> tuple[bytes, bool]:
    """The body, and whether the connection may carry another request."""
    length = _content_length(headers)
    if _chunked(headers):
        parts: list[bytes] = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size_text = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError as exc:
                raise HttpUnavailable(f"bad chunk size in the reply: {size_text[:20]!r}") from exc
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts), _keeps_alive(headers)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if length is not None:
        return await reader.readexactly(length), _keeps_alive(headers)
    return await reader.read(), False  # ended by closing the connection


class Pool:
    """Keep-alive connections to one Unix socket; each request takes one, so calls may overlap."""

    def __init__(self, path: str, check: ConnectionCheck | None = None, connect_timeout: float = 5.0) -> None:
        self.path = path
        self.check = check
        self.connect_timeout = connect_timeout
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_unix_connection(self.path, limit=MAX_HEAD)
        except TimeoutError as exc:
            raise HttpUnavailable(f"connecting to {self.path} timed out") from exc
        except OSError as exc:
            raise HttpUnavailable(f"{exc.strerror or exc}") from exc
        conn = _Connection(reader, writer)
        if self.check is not None:
            sock = writer.get_extra_info("socket")
            try:
                self.check(sock)
            except BaseException:
                conn.close()
                raise
        return conn

    async def request(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> Response:
        """Send one request and read its whole reply (the caller bounds the time it may take)."""
        conn = None
        while self._idle:
            candidate = self._idle.pop()
            if candidate.usable():
                conn = candidate
                break
            candidate.close()
        if conn is None:
            conn = await self._connect()
        keep = False
        try:
            conn.writer.write(request_bytes(method, target, body, headers))
            await conn.writer.drain()
            head = await conn.reader.readuntil(b"\r\n\r\n")
            status, reply_headers = parse_head(head)
            data, keep = await _read_body(conn.reader, reply_headers)
        except asyncio.IncompleteReadError as exc:
            raise HttpUnavailable("the connection closed before the whole reply came") from exc
        except asyncio.LimitOverrunError as exc:
            raise HttpUnavailable("the reply's head is too long") from exc
        except (OSError, RuntimeError) as exc:  # RuntimeError: a transport closed under us
            raise HttpUnavailable(str(exc) or type(exc).__name__) from exc
        finally:
            if keep:
                conn.idle_since = time.monotonic()
                self._idle.append(conn)
            else:
                conn.close()
        return Response(status, reply_headers, data)

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()


# --- blocking, one call ---------------------------------------------------------------------------


def call(
    path: str,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
    check: ConnectionCheck | None = None,
) -> Response:
    """One request on a new connection, without an event loop (for short-lived commands)."""
    deadline = time.monotonic() + timeout
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        try:
            sock.connect(path)
            if check is not None:
                check(sock)
            sock.sendall(request_bytes(method, target, body, {**(headers or {}), "Connection": "close"}))
            buf = bytearray()
            while b"\r\n\r\n" not in buf:
                if len(buf) > MAX_HEAD:
                    raise HttpUnavailable("the reply's head is too long")
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    raise HttpUnavailable("the connection closed before the whole reply came")
                buf += chunk
            end = buf.index(b"\r\n\r\n") + 4
            status, reply_headers = parse_head(bytes(buf[:end]))
            rest = bytes(buf[end:])
            if _chunked(reply_headers):
                raise HttpUnavailable("a chunked reply where one body was expected")
            length = _content_length(reply_headers)
            parts = [rest]
            got = len(rest)
            while length is None or got < length:
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    if length is None:
                        break
                    raise HttpUnavailable("the connection closed before the whole reply came")
                parts.append(chunk)
                got += len(chunk)
            data = b"".join(parts)
            return Response(status, reply_headers, data[:length] if length is not None else data)
        except TimeoutError as exc:
            raise HttpUnavailable(f"no reply within {timeout:g}s") from exc
        except OSError as exc:
            raise HttpUnavailable(f"{exc.strerror or exc}") from exc
    finally:
        sock.close()
