"""The MCP server's stdio without worker threads: the SDK's own stdio transport and server, fed by
asyncio pipes.

The SDK's `stdio_server()` reads each line and writes each reply through anyio's file wrapper,
which is a worker-thread hop per line read, per write and per flush: on a 2-core machine those
hops cost more than the rest of a tool call. When stdin and stdout are pipes or sockets (as an MCP
host starts us), they are read and written by the event loop itself, and handed to the SDK's
`stdio_server(stdin=..., stdout=...)`, which keeps its framing, parsing and serialising. Otherwise
(a terminal, a file) the SDK's default is used.

As the SDK does, fd 0 and 1 are pointed at /dev/null and stderr while we serve, so nothing a child
or a stray print writes can corrupt the protocol stream; both are restored on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import stat
from collections.abc import AsyncIterator
from typing import Any

LINE_LIMIT = 256 * 1024 * 1024  # one JSON-RPC message per line; file contents make long ones


def _is_stream(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class Lines:
    """What the SDK iterates for input: one decoded line per message."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    def __aiter__(self) -> Lines:
        return self

    async def __anext__(self) -> str:
        line = await self._reader.readline()
        if not line:
            raise StopAsyncIteration
        return line.decode("utf-8", errors="replace")


WRITE_PIECE = 64 * 1024


class Output:
    """What the SDK writes replies to: written by the event loop; `flush` waits until they left.

    A long reply goes out in pieces of a pipe's size, each written once the last one left: the
    pipe transport keeps unsent bytes in one buffer that it shifts after every partial write,
    which for a reply of many megabytes costs more than the reply itself."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    async def write(self, text: str) -> None:
        data = text.encode("utf-8")
        if len(data) <= WRITE_PIECE:
            self._writer.write(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), WRITE_PIECE):
            self._writer.write(view[start : start + WRITE_PIECE])
            await self._writer.drain()

    async def flush(self) -> None:
        await self._writer.drain()


@contextlib.asynccontextmanager
async def event_loop_stdio() -> AsyncIterator[tuple[Lines, Output] | None]:
    """stdin and stdout served by the event loop, or None when they are not pipes or sockets."""
    if not (_is_stream(0) and _is_stream(1)):
        yield None
        return
    loop = asyncio.get_running_loop()
    wire_in = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    wire_out = fcntl.fcntl(1, fcntl.F_DUPFD_CLOEXEC, 3)
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    in_file = os.fdopen(wire_in, "rb", buffering=0)
    out_file = os.fdopen(wire_out, "wb", buffering=0)
    transports: list[Any] = []
    try:
        reader = asyncio.StreamReader(limit=LINE_LIMIT)
        read_transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(reader), in_file
        )
        transports.append(read_transport)
        write_transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, out_file)
        transports.append(write_transport)
        # drain() returns only once every byte is written: a reply is out when flush() returns.
        write_transport.set_write_buffer_limits(high=0)
        writer = asyncio.StreamWriter(write_transport, protocol, None, loop)
        yield Lines(reader), Output(writer)
    finally:
        # Back to blocking (the pipes may be shared with a terminal's shell) and back on fd 0 and 1,
        # then the transports close their duplicates.
        with contextlib.suppress(OSError):
            os.set_blocking(wire_in, True)
            os.set_blocking(wire_out, True)
            os.dup2(wire_in, 0)
            os.dup2(wire_out, 1)
        for transport in transports:
            transport.close()
        for f in (in_file, out_file):
            with contextlib.suppress(OSError):
                f.close()
