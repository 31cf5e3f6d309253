"""Routes of commands and the terminal: send, page/wait, keys, interrupt, screen, wait for output."""

from __future__ import annotations

from aiohttp import web

from sshkeep.common.models.sessions import (
    CommandQuery,
    CommandResult,
    SearchRequest,
    SearchResult,
    SendCommandRequest,
    SendKeysRequest,
    SendKeysResult,
    Snapshot,
    SnapshotQuery,
    WaitForRequest,
    WaitForResult,
)
from sshkeep.daemon.api.core import Call, commands, endpoint

routes = web.RouteTableDef()


@endpoint(routes, "send_command")
async def send_command(request: web.Request, call: Call) -> CommandResult:
    body = call.body(SendCommandRequest)
    return await commands(request).send_command(
        call.session_id, body.command, body.timeout, local_path=body.local_path
    )


@endpoint(routes, "get_command")
async def get_command(request: web.Request, call: Call) -> CommandResult:
    cid = call.params["command_id"]
    q = call.query(CommandQuery)
    return await commands(request).get_command(
        call.session_id,
        None if cid == "last" else cid,
        offset=q.offset,
        limit=q.limit,
        wait=q.wait,
        local_path=q.local_path,
    )


@endpoint(routes, "send_keys")
async def send_keys(request: web.Request, call: Call) -> SendKeysResult:
    body = call.body(SendKeysRequest)
    return await commands(request).send_keys(call.session_id, body.keys, body.wait)


@endpoint(routes, "search_output")
async def search_output(request: web.Request, call: Call) -> SearchResult:
    return await commands(request).search(call.session_id, call.body(SearchRequest))


@endpoint(routes, "interrupt_command")
async def interrupt(request: web.Request, call: Call) -> CommandResult:
    return await commands(request).interrupt(call.session_id)


@endpoint(routes, "get_snapshot")
async def screen(request: web.Request, call: Call) -> Snapshot:
    lines = call.query(SnapshotQuery).lines
    return await commands(request).snapshot(call.session_id, lines or None)


@endpoint(routes, "wait_for")
async def wait_for(request: web.Request, call: Call) -> WaitForResult:
    body = call.body(WaitForRequest)
    return await commands(request).wait_for(call.session_id, body.pattern, body.timeout, body.since)
