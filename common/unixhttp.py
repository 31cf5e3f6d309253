"""HTTP/1.1 over the daemon's Unix socket, standard library only.

The API client (`sshkeep.common.client`) sends every call through a pool of keep-alive asyncio
connections (`sshkeep.common.httppool`); `sshkeep status` makes one blocking `call` here, without
an event loop (this module does not even import asyncio). Both frame requests and parse replies
with this module. The daemon (aiohttp) answers every API call with a
Content-Length body; chunked bodies and bodies ended by closing the connection are read too.

Nothing here knows the API: a transport failure raises `HttpUnavailable` (the caller says which
daemon did not answer), and any status comes back as a `Response`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import NamedTuple

MAX_HEAD = 64 * 1024

# Called with each new connection's socket before anything is sent on it; raises to refuse it.
ConnectionCheck = Callable[[socket.socket], None]


class HttpUnavailable(Exception):
    """The socket could not be reached, or the connection broke before a whole reply came.

    `sent`: the request may have reached the server (False only when no connection was made)."""

    def __init__(self, message: str = "", *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class Response(NamedTuple):
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


def keeps_alive(headers: dict[str, str]) -> bool:
    return "close" not in headers.get("connection", "").lower()


def content_length(headers: dict[str, str]) -> int | None:
    value = headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise HttpUnavailable(f"bad Content-Length in the reply: {value!r}")
    return int(value)


def chunked(headers: dict[str, str]) -> bool:
    return "chunked" in headers.get("transfer-encoding", "").lower()


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
            if chunked(reply_headers):
                raise HttpUnavailable("a chunked reply where one body was expected")
            length = content_length(reply_headers)
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
