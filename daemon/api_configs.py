"""API routes for configs (filled in by its mechanism)."""

from __future__ import annotations

from aiohttp import web

routes: list[web.RouteDef] = []
