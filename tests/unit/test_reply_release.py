"""A keep-alive connection's last request and reply let go of their bodies once answered.

aiohttp's handler of a keep-alive connection holds the connection's last request and response
until the next request comes, so their bodies would stay in the daemon for as long as the client
idles. Served here by a real aiohttp server on a Unix socket, with the audit middleware."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from sshkeep.common.settings import Settings
from sshkeep.daemon.api.audit import AUDIT, AuditLog, audit_middleware
from sshkeep.daemon.api.core import SentReply
from sshkeep.daemon.memtrim import TRIM_AFTER_BYTES


async def test_an_idle_connection_holds_neither_its_last_request_body_nor_its_reply(tmp_path: Path) -> None:
    served: list[tuple[web.Request, web.Response]] = []
    size = TRIM_AFTER_BYTES + 1

    async def big(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        resp = SentReply(body=body[::-1], content_type="application/octet-stream")
        served.append((request, resp))
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
            ((request, resp),) = served
            assert request._read_bytes is None
            assert resp.body is None
            assert (tmp_path / "audit.log").read_text().count("\n") == 1
    finally:
        await runner.cleanup()
        app[AUDIT].close()
