"""The stdlib HTTP/1.1 client over a Unix socket: framing, body kinds, keep-alive, refusal, errors."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from sshkeep.common.httppool import Pool
from sshkeep.common.unixhttp import HttpUnavailable, call, parse_head, request_bytes

Reply = Callable[[bytes], bytes]


def test_request_bytes_frames_a_request() -> None:
    raw = request_bytes("POST", "/v1/x?a=1", b'{"k":1}', {"Content-Type": "application/json"})
    assert raw == (
        b"POST /v1/x?a=1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b'Content-Length: 7\r\n\r\n{"k":1}'
    )
    assert request_bytes("GET", "/", None) == b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with pytest.raises(ValueError):
        request_bytes("GET", "/", None, {"X": "a\r\nInjected: 1"})


def test_parse_head() -> None:
    status, headers = parse_head(b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\nX-A:  b \r\n\r\n")
    assert status == 404 and headers == {"content-length": "3", "x-a": "b"}
    with pytest.raises(HttpUnavailable):
        parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")


async def serve(path: Path, reply: Reply) -> tuple[asyncio.AbstractServer, list[int]]:
    """A server answering each request (head and Content-Length body) with `reply(request)`."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                _, headers = parse_head(b"HTTP/1.1 200 X\r\n" + head.split(b"\r\n", 1)[1])
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                out = reply(head + body)
                writer.write(out)
                await writer.drain()
                if b"Connection: close" in out or (b"Content-Length" not in out and b"chunked" not in out):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(handle, str(path))
    return server, connections


def ok(body: bytes, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(coro())  # type: ignore[arg-type]


def test_pool_reuses_one_connection_and_reads_every_body_kind(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"

    def reply(request: bytes) -> bytes:
        target = request.split(b" ")[1]
        if target == b"/chunked":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            return head + b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
        if target == b"/close":
            return b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nuntil-eof"
        return ok(request.split(b"\r\n\r\n", 1)[1] or b"empty")

    async def main() -> None:
        server, connections = await serve(sock, reply)
        pool = Pool(str(sock))
        try:
            r = await pool.request("POST", "/echo", b"x" * 100_000, {})
            assert (r.status, r.body) == (200, b"x" * 100_000)
            r = await pool.request("GET", "/chunked", None, {})
            assert (r.status, r.body) == (200, b"abcde")
            assert len(connections) == 1  # keep-alive
            r = await pool.request("GET", "/close", None, {})
            assert (r.status, r.body) == (500, b"until-eof")
            r = await pool.request("GET", "/again", None, {})
            assert r.body == b"empty"
            assert len(connections) == 2  # the closed one was not reused
            # Calls may overlap: each takes its own connection.
            rs = await asyncio.gather(*(pool.request("POST", "/", str(i).encode(), {}) for i in range(5)))
            assert [x.body for x in rs] == [str(i).encode() for i in range(5)]
        finally:
            await pool.close()
            server.close()
            await server.wait_closed()

    run(main)


def test_pool_errors_are_unavailable(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"

    async def main() -> None:
        pool = Pool(str(sock))
        with pytest.raises(HttpUnavailable):
            await pool.request("GET", "/", None, {})  # nothing listens
        server, _ = await serve(
            sock, lambda _req: b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nConnection: close\r\n\r\nshort"
        )
        try:
            with pytest.raises(HttpUnavailable, match="closed before"):
                await pool.request("GET", "/", None, {})
        finally:
            await pool.close()
            server.close()
            await server.wait_closed()

    run(main)


def test_pool_check_refuses_before_anything_is_sent(tmp_path: Path) -> None:
    sock = tmp_path / "s.sock"
    seen: list[bytes] = []

    def refuse(s: socket.socket) -> None:
        assert s.family == socket.AF_UNIX
        raise PermissionError("not ours")

    async def main() -> None:
        def remember(req: bytes) -> bytes:
            seen.append(req)
            return ok(b"x")

        server, _ = await serve(sock, remember)
        pool = Pool(str(sock), check=refuse)
        try:
            with pytest.raises(PermissionError):
                await pool.request("GET", "/", None, {})
            await asyncio.sleep(0.05)
            assert seen == []
        finally:
            await pool.close()
            server.close()
            await server.wait_closed()

    run(main)


def test_blocking_call(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(4096)
        assert data.startswith(b"GET /v1/health HTTP/1.1\r\n") and b"Connection: close" in data
        conn.sendall(ok(b'{"status":"ok"}', "Connection: close\r\n"))
        conn.close()

    t = threading.Thread(target=answer)
    t.start()
    try:
        r = call(str(path), "GET", "/v1/health", timeout=5)
    finally:
        t.join(5)
        listener.close()
    assert (r.status, r.body) == (200, b'{"status":"ok"}')
    with pytest.raises(HttpUnavailable):
        call(str(tmp_path / "none.sock"), "GET", "/")
