"""The MCP server's stdio without worker threads: the SDK's own server and session over streams
the event loop reads and writes, and a clear reply to every line that is not a valid message.

The SDK's `stdio_server()` reads each line and writes each reply through anyio's file wrapper,
which is a worker-thread hop per line read, per write and per flush: on a 2-core machine those
hops cost more than the rest of a tool call. When stdin and stdout are pipes or sockets (as an MCP
host starts us), they are read and written by the event loop itself and handed to the SDK's server
as its read and write streams (`WireIn`, `WireOut`), with the SDK's own message models for parsing
and serialising. Otherwise (a terminal, a file) the SDK's default is used.

The SDK's reader drops a line that does not parse (and decodes bytes that are not UTF-8 to U+FFFD,
silently changing a command): the caller waits for a reply that never comes. Here such a line gets
a JSON-RPC error carrying the request's id when it can be recovered, and a `tools/call` whose
arguments are not Unicode text (a lone UTF-16 surrogate such as the valid JSON escape `"\\ud800"`,
or bytes that are not UTF-8) gets a tool error naming the argument: `[bad_request] …` + `Next: …`.

As the SDK does, fd 0 and 1 are pointed at /dev/null and stderr while we serve, so nothing a child
or a stray print writes can corrupt the protocol stream; both are restored on exit.

The SDK's `Server.run` decides the protocol era (the 2025 `initialize` handshake, or 2026-07-28
per-request envelopes) by peeking at the client's first request through a relay task and memory
stream that every later message then passes through as well: a task switch per message.
`serve_eras` makes the same decision by looking ahead in `WireIn` itself, then runs the SDK's own
serving loop of that era straight on our streams (falling back to `Server.run` when the SDK does
not have those loops).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import inspect
import json
import os
import re
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any

import anyio
import mcp_types as types
from mcp.server.lowlevel.server import Server
from mcp.shared.message import SessionMessage
from pydantic_core import from_json

LINE_LIMIT = 256 * 1024 * 1024  # one JSON-RPC message per line; file contents make long ones
WRITE_PIECE = 64 * 1024
# Frames kept from before the client's first request (the SDK's own peek keeps as many).
AHEAD_LIMIT = 8


def _is_stream(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


class WireOut:
    """The SDK's write stream: each message serialised once, straight to bytes, and written by the
    event loop; `send` returns once the bytes left (as the SDK's writer flushes every message).

    A long reply goes out in pieces of a pipe's size, each written once the last one left: the pipe
    transport keeps unsent bytes in one buffer that it shifts after every partial write, which for a
    reply of many megabytes costs more than the reply itself. Concurrent replies never interleave."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        self._lock = asyncio.Lock()

    async def send(self, item: SessionMessage, /) -> None:
        message = item.message
        data = message.__pydantic_serializer__.to_json(message, by_alias=True, exclude_unset=True)
        await self.write_line(data)

    async def write_line(self, data: bytes) -> None:
        async with self._lock:
            if len(data) <= WRITE_PIECE:
                self._writer.write(data + b"\n")
            else:
                view = memoryview(data)
                for start in range(0, len(view), WRITE_PIECE):
                    self._writer.write(view[start : start + WRITE_PIECE])
                    await self._writer.drain()
                self._writer.write(b"\n")
            await self._writer.drain()

    async def aclose(self) -> None:
        return None  # the pipe is closed by `event_loop_stdio`, after the server is done

    async def __aenter__(self) -> WireOut:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class WireIn:
    """The SDK's read stream: one message per line; a line that is not one is answered here."""

    def __init__(self, reader: asyncio.StreamReader, out: WireOut) -> None:
        self._reader = reader
        self._out = out
        self._ahead: collections.deque[SessionMessage] = collections.deque()

    def __aiter__(self) -> WireIn:
        return self

    async def opening_request(self) -> types.JSONRPCRequest | None:
        """Read up to the client's first request (None at EOF before one), keeping it and up to
        AHEAD_LIMIT frames before it to be read again, in order."""
        while True:
            try:
                item = await self._read()
            except StopAsyncIteration:
                return None
            if isinstance(item.message, types.JSONRPCRequest):
                self._ahead.append(item)
                return item.message
            if len(self._ahead) < AHEAD_LIMIT:
                self._ahead.append(item)

    async def __anext__(self) -> SessionMessage | Exception:
        if self._ahead:
            return self._ahead.popleft()
        return await self._read()

    async def _read(self) -> SessionMessage:
        while True:
            try:
                line = await self._reader.readline()
            except ValueError:  # longer than LINE_LIMIT: the reader dropped what it had
                await self._out.send(SessionMessage(parse_error(None, f"a message over {LINE_LIMIT} bytes")))
                continue
            if not line:
                raise StopAsyncIteration
            try:
                return SessionMessage(parse_message(line))
            except ValueError:  # pydantic's ValidationError, for JSON and for the message's shape
                reply = reply_to_bad_line(line)
            if reply is not None:
                await self._out.send(SessionMessage(reply))

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise anyio.EndOfStream from None

    async def aclose(self) -> None:
        return None

    async def __aenter__(self) -> WireIn:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def parse_message(line: bytes) -> types.JSONRPCMessage:
    """The message a line holds, as the SDK's union of message models makes it (ValueError when it
    is none). The line is parsed once; an object with an id and a method and neither a result nor
    an error member is almost always a request, so it is validated as one first (a third of the
    cost of trying the whole union); should it not be one, the union decides. (With an error
    member the union would prefer the error, which is why such objects go to the union.) Its
    members are looked up, not searched for in the line: a 1 MB file's content is not scanned
    twice more for `"error"` and `"result"`."""
    data = from_json(line)
    if (
        isinstance(data, dict)
        and "method" in data
        and "id" in data
        and "error" not in data
        and "result" not in data
    ):
        with contextlib.suppress(ValueError):
            return types.JSONRPCRequest.model_validate(data)
    return types.jsonrpc_message_adapter.validate_python(data, by_name=False)


# Where a line that does not parse says its id: before its params (as every client writes it).
_ID = re.compile(r'"id"\s*:\s*(-?\d+|"(?:[^"\\]|\\.)*")')
UNICODE_HINT = (
    "send the text as UTF-8 (a character outside the Basic Multilingual Plane as a surrogate pair, "
    'e.g. "\\ud83d\\ude00"); for raw bytes type them with send_keys as escapes a shell understands '
    "(printf '\\xNN')"
)


def reply_to_bad_line(line: bytes) -> types.JSONRPCMessage | None:
    """The reply to a line the SDK's models refused (None when no reply can be sent: a notification,
    a blank line). A message that is JSON but not Unicode text is named where it is wrong."""
    if not line.strip():
        return None
    not_utf8: int | None = None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        not_utf8 = exc.start
        text = line.decode("utf-8", "surrogateescape")  # each stray byte a lone surrogate, as below
    try:
        obj = json.loads(text)
    except ValueError as exc:
        return parse_error(_recover_id(text), f"not JSON ({exc})")
    if not isinstance(obj, dict):
        return parse_error(None, "not a JSON-RPC message (a JSON object per line)")
    rid = obj.get("id")
    if isinstance(rid, bool) or not isinstance(rid, (int, str)):
        rid = None
    method = obj.get("method")
    found = _lone_surrogate(obj.get("params"), "params")
    if found is not None:
        where, index, char = found
        if not_utf8 is not None:
            what = f"not UTF-8 (byte {not_utf8} of the message)"
        else:
            lone = f"\\u{ord(char):04x} at character {index}"
            what = f"not valid Unicode text (it holds a lone UTF-16 surrogate, {lone})"
        if rid is None:
            print(f"sshkeep mcp: dropped a notification: {where}: {what}", file=sys.stderr)
            return None
        if method == "tools/call" and where.startswith("params.arguments."):
            tool = obj["params"].get("name")
            name = where.removeprefix("params.arguments.")
            said = (
                f"[bad_request] {tool} argument {name}: {what}\nNext: {UNICODE_HINT}, and call {tool} again."
            )
            result = types.CallToolResult(content=[types.TextContent(type="text", text=said)], is_error=True)
            return types.JSONRPCResponse(
                jsonrpc="2.0", id=rid, result=result.model_dump(by_alias=True, exclude_none=True)
            )
        return error(rid, types.INVALID_PARAMS, f"[bad_request] {where}: {what}\nNext: {UNICODE_HINT}.")
    if not_utf8 is not None:
        return parse_error(rid, f"not UTF-8 (byte {not_utf8})")
    if rid is None:
        print("sshkeep mcp: dropped a message that is not JSON-RPC", file=sys.stderr)
        return None
    return error(
        rid,
        types.INVALID_REQUEST,
        '[bad_request] not a JSON-RPC 2.0 request (it needs jsonrpc: "2.0", an id and a method)\n'
        "Next: send one JSON-RPC 2.0 message per line.",
    )


def error(rid: int | str | None, code: int, message: str) -> types.JSONRPCError:
    return types.JSONRPCError(jsonrpc="2.0", id=rid, error=types.ErrorData(code=code, message=message))


def parse_error(rid: int | str | None, what: str) -> types.JSONRPCError:
    return error(
        rid,
        types.PARSE_ERROR,
        f"[bad_request] the message is {what}\nNext: send one JSON-RPC message per line.",
    )


def _recover_id(text: str) -> int | str | None:
    head = text.split('"params"', 1)[0]
    match = _ID.search(head)
    if match is None:
        return None
    with contextlib.suppress(ValueError):
        value = json.loads(match.group(1))
        if isinstance(value, (int, str)):
            return value
    return None


def _lone_surrogate(value: Any, where: str) -> tuple[str, int, str] | None:
    """The first string (by its path) holding a lone surrogate: (path, index, the surrogate)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            return where, exc.start, value[exc.start]
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key, where) if isinstance(key, str) else None
            if found is not None:
                return found
            found = _lone_surrogate(item, f"{where}.{key}")
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{where}.{i}")
            if found is not None:
                return found
    return None


@contextlib.asynccontextmanager
async def event_loop_stdio() -> AsyncIterator[tuple[WireIn, WireOut] | None]:
    """stdin and stdout served by the event loop as the SDK's read and write streams, or None when
    they are not pipes or sockets."""
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
        # drain() returns only once every byte is written: a reply is out when send() returns.
        write_transport.set_write_buffer_limits(high=0)
        out = WireOut(asyncio.StreamWriter(write_transport, protocol, None, loop))
        yield WireIn(reader, out), out
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


EraLoops = tuple[Callable[..., Awaitable[None]], Callable[..., Awaitable[None]], Callable[[Any], bool]]


def sdk_era_loops() -> EraLoops | None:
    """The SDK's serving loop of each era (legacy, modern) and its test for a 2026-07-28 envelope:
    private to the SDK, so None when this version lacks them (`serve_eras` then uses `Server.run`)."""
    from mcp.server import runner

    names = ("_serve_legacy_stream", "_serve_modern_stream", "_has_modern_envelope")
    found = [getattr(runner, name, None) for name in names]
    if not all(callable(f) for f in found):
        return None
    legacy, modern, enveloped = found
    assert legacy is not None and modern is not None and enveloped is not None
    # Called with these keywords below: a version whose loops take others is served by Server.run.
    wants = {
        legacy: {"lifespan_state", "session_id", "init_options", "raise_exceptions"},
        modern: {"lifespan_state", "raise_exceptions"},
    }
    for fn, keywords in wants.items():
        if not keywords <= set(inspect.signature(fn).parameters):
            return None
    return legacy, modern, enveloped


async def serve_eras(lowlevel: Server[Any], wire_in: WireIn, wire_out: WireOut) -> None:
    """`Server.run` on our streams without its relay task: the server's lifespan, then the SDK's
    loop of the era the client's first request opens (as `serve_dual_era_loop` decides it)."""
    options = lowlevel.create_initialization_options()
    loops = sdk_era_loops()
    if loops is None:
        await lowlevel.run(wire_in, wire_out, options)
        return
    legacy, modern, enveloped = loops
    async with lowlevel.lifespan(lowlevel) as state:
        opening = await wire_in.opening_request()
        if opening is not None and opening.method != "initialize" and enveloped(opening.params):
            await modern(lowlevel, wire_in, wire_out, lifespan_state=state, raise_exceptions=False)
        else:
            await legacy(
                lowlevel,
                wire_in,
                wire_out,
                lifespan_state=state,
                session_id=None,
                init_options=options,
                raise_exceptions=False,
            )
