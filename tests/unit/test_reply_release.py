"""A keep-alive connection's last request and reply let go of their bodies once answered.

aiohttp's handler of a keep-alive connection holds the connection's last request and response
until the next request comes, so their bodies would stay in the daemon for as long as the client
idles. Served here by a real aiohttp server on a Unix socket, with the audit middleware."""

from __future__ import annotations

import gc
from pathlib import Path

import aiohttp
from aiohttp import web

from sshkeep.common.settings import Settings
from sshkeep.daemon.api.audit import AUDIT, AuditLog, audit_middleware
from sshkeep.daemon.api.core import SentReply
from sshkeep.daemon.memtrim import TRIM_AFTER_BYTES


def _holds(obj: object, target: object) -> bool:
    """Whether `obj` refers to `target` itself or through its attribute dict (whatever the name)."""
    refs = gc.get_referents(obj)
    return any(r is target or (isinstance(r, dict) and any(v is target for v in r.values())) for r in refs)


async def test_an_idle_connection_holds_neither_its_last_request_body_nor_its_reply(tmp_path: Path) -> None:
    served: list[tuple[web.Request, bytes, web.Response, bytes]] = []
    size = TRIM_AFTER_BYTES + 1

    async def big(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        out = body[::-1]
        resp = SentReply(body=out, content_type="application/octet-stream")
        served.append((request, body, resp, out))
        assert _holds(request, body) and _holds(resp, out)  # what is checked below can be seen
        return resp

    app = web.Application(middlewares=[audit_middleware], client_max_size=4 * size)
    app[AUDIT] = AuditLog(tmp_path / "audit.log", Settings)
    app.router.add_post("/v1/big", big)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = tmp_path / "api.sock"
    await web.UnixSite(runner, str(sock)).start()
    try:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock))) as client:
            sent = b"a" * (size - 1) + b"z"
            async with client.post("http://sk/v1/big", data=sent) as got:
                assert got.status == 200
                assert await got.read() == sent[::-1]  # the whole reply, its body dropped only after
            # The connection stays open, idle, in the client's pool: the server still holds both.
            ((request, body, resp, out),) = served
            assert not _holds(request, body)
            assert not _holds(resp, out)
            assert (tmp_path / "audit.log").read_text().count("\n") == 1
    finally:
        await runner.cleanup()
        app[AUDIT].close()
