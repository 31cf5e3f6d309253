"""The daemon's HTTP layer without a daemon: the error middleware's request id on log lines."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from sshkeep.daemon.api.core import errors_middleware


class _NoSocket:
    """A transport that names no socket (so the request has no peer credentials)."""

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default


def test_log_lines_within_a_request_carry_its_id_and_none_after_it() -> None:
    seen: list[object] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(structlog.contextvars.get_contextvars().get("request_id"))
        return web.Response(text="ok")

    async def go() -> None:
        for rid in ("rid-1", "rid-2"):
            request = make_mocked_request(
                "GET", "/v1/health", headers={"X-Request-Id": rid}, transport=_NoSocket()
            )
            resp = await errors_middleware(request, handler)
            assert resp.status == 200
            seen.append(structlog.contextvars.get_contextvars().get("request_id"))

    asyncio.run(go())
    assert seen == ["rid-1", None, "rid-2", None]
