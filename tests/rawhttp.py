"""HTTP/1.1 over a Unix socket with nothing normalised: the request goes out byte for byte.

Clients (curl, aiohttp) clean up paths (`..`, percent-encoding) and refuse odd bodies; the daemon
must cope with what a careless or hostile local program sends, so some tests talk raw.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    sock_path: Path,
    method: str,
    path: str | bytes,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> RawReply:
    """Send one request (Connection: close) and read the whole reply."""
    target = path if isinstance(path, bytes) else path.encode()
    head = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: localhost", b"Connection: close"]
    for k, v in (headers or {}).items():
        head.append(f"{k}: {v}".encode())
    if body is not None:
        head.append(b"Content-Length: " + str(len(body)).encode())
        if not headers or "Content-Type" not in headers:
            head.append(b"Content-Type: application/json")
    data = b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        # The server may answer early (e.g. 413) and stop reading: its reply is still waiting.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(data)
        chunks = []
        while True:
            try:
                chunk = s.recv(1 << 16)
            except ConnectionResetError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    head_raw, _, rest = raw.partition(b"\r\n\r\n")
    lines = head_raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if hdrs.get("transfer-encoding", "").lower() == "chunked":
        rest = _dechunk(rest)
    return RawReply(status, hdrs, rest)


def _dechunk(data: bytes) -> bytes:
    out = []
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(data[:size])
        data = data[size + 2 :]
    return b"".join(out)
