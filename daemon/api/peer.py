"""Who is on the other end of a Unix-socket request (SO_PEERCRED, Linux)."""

from __future__ import annotations

import socket
import struct
import weakref
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Peer:
    pid: int
    uid: int
    gid: int


_PEER = web.RequestKey("peer", object)
# SO_PEERCRED names who connected, fixed for the connection's life: asked once per connection
# (a keep-alive client sends many requests on one).
_BY_TRANSPORT: weakref.WeakKeyDictionary[object, Peer | None] = weakref.WeakKeyDictionary()


def peer_of(request: web.Request) -> Peer | None:
    """The connecting process's credentials, or None where the OS does not say (asked once per
    connection: the middlewares of every request on it all want it)."""
    try:
        cached = request[_PEER]
    except KeyError:
        transport = request.transport
        if transport is None:
            cached = None
        else:
            try:
                cached = _BY_TRANSPORT[transport]
            except KeyError:
                cached = _BY_TRANSPORT[transport] = _ask(request)
        request[_PEER] = cached
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
