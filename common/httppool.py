"""Keep-alive HTTP/1.1 connections to the daemon's Unix socket, for asyncio callers (stdlib only).

Framing and parsing are `sshkeep.common.unixhttp`'s; a transport failure raises its
`HttpUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from sshkeep.common.unixhttp import (
    ConnectionCheck,
    HttpUnavailable,
    Response,
    chunked,
    content_length,
    keeps_alive,
    parse_head,
    request_bytes,
)

# A connection idle this long is not reused: the server (aiohttp: 75 s) may be closing it just now,
# and a request sent into a closing connection cannot be told apart from one the server lost.
REUSE_IDLE_SECONDS = 30.0
READ_LIMIT = 4 * 1024 * 1024


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
    length = content_length(headers)
    if chunked(headers):
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
                return b"".join(parts), keeps_alive(headers)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if length is not None:
        return await reader.readexactly(length), keeps_alive(headers)
    return await reader.read(), False  # ended by closing the connection


class Pool:
    """Keep-alive connections to one Unix socket; each request takes one, so calls may overlap."""

    def __init__(
        self,
        path: str,
        check: ConnectionCheck | None = None,
        connect_timeout: float = 5.0,
        precheck: Callable[[], None] | None = None,
    ) -> None:
        self.path = path
        self.check = check  # on each new connection's socket, before anything is sent
        self.precheck = precheck  # before each new connection is made
        self.connect_timeout = connect_timeout
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        if self.precheck is not None:
            self.precheck()
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_unix_connection(self.path, limit=READ_LIMIT)
        except TimeoutError as exc:
            raise HttpUnavailable(f"connecting to {self.path} timed out", sent=False) from exc
        except OSError as exc:
            raise HttpUnavailable(f"{exc.strerror or exc}", sent=False) from exc
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
