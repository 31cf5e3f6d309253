"""Who is on the other end of a Unix-socket request (SO_PEERCRED, Linux)."""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


_PEER = web.RequestKey("peer", object)
_UNKNOWN = object()


def peer_of(request: web.Request) -> Peer | None:
    """The connecting process's credentials, or None where the OS does not say (asked once per
    request: the middlewares all want it)."""
    cached = request.get(_PEER, _UNKNOWN)
    if cached is _UNKNOWN:
        cached = request[_PEER] = _ask(request)
    return cached if isinstance(cached, Peer) else None


def _ask(request: web.Request) -> Peer | None:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or not hasattr(socket, "SO_PEERCRED"):
        return None
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except OSError:
        return None
    pid, uid, gid = struct.unpack("3i", creds)
    return Peer(int(pid), int(uid), int(gid))
