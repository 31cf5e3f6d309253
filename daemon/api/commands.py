"""Routes of commands and the terminal: send, page/wait, keys, interrupt, screen, wait for output.

Each takes an optional `terminal` (default: the session's main one)."""

from __future__ import annotations

from aiohttp import web

from sshkeep.common.models.sessions import (
    CommandQuery,
    CommandResult,
    InterruptRequest,
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
from sshkeep.daemon.api.core import Call, caller, commands, endpoint, guard, note_decision

routes = web.RouteTableDef()


@endpoint(routes, "send_command")
async def send_command(request: web.Request, call: Call) -> CommandResult:
    body = call.body(SendCommandRequest)
    runner = commands(request)
    # A retry of a call that typed its command already gets its result, without asking the policy
    # (or a person) again about a command that is not typed again.
    retry = body.request_id is not None and runner.replay(
        runner.lookup(call.session_id, body.terminal), body.request_id, body.command
    )
    if not retry:
        decision = await guard(request).check_command(call.session_id, body.command, by=caller(request))
        note_decision(request, decision)
        if decision.approval is not None and not decision.allowed:
            return CommandResult(
                session_id=call.session_id,
                terminal=body.terminal or "main",
                command_id="",
                command=body.command,
                status="approval_required",
                approval=decision.approval,
                hint=decision.approval.hint,
            )
        decision.raise_unless_allowed()
        guard(request).line_reset(call.session_id)
    return await runner.send_command(
        call.session_id,
        body.command,
        body.timeout,
        terminal=body.terminal,
        local_path=body.local_path,
        request_id=body.request_id,
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
        terminal=q.terminal,
    )


@endpoint(routes, "send_keys")
async def send_keys(request: web.Request, call: Call) -> SendKeysResult:
    body = call.body(SendKeysRequest)
    g = guard(request)
    decision = await g.check_keys(call.session_id, body.keys, by=caller(request), terminal=body.terminal)
    note_decision(request, decision)
    decision.raise_unless_allowed()
    result = await commands(request).send_keys(call.session_id, body.keys, body.wait, terminal=body.terminal)
    g.keys_sent(decision)
    return result


@endpoint(routes, "search_output")
async def search_output(request: web.Request, call: Call) -> SearchResult:
    return await commands(request).search(call.session_id, call.body(SearchRequest))


@endpoint(routes, "interrupt_command")
async def interrupt(request: web.Request, call: Call) -> CommandResult:
    guard(request).line_reset(call.session_id)  # Ctrl-C clears whatever keys left on the line
    return await commands(request).interrupt(call.session_id, terminal=call.body(InterruptRequest).terminal)


@endpoint(routes, "get_snapshot")
async def screen(request: web.Request, call: Call) -> Snapshot:
    q = call.query(SnapshotQuery)
    return await commands(request).snapshot(call.session_id, q.lines or None, terminal=q.terminal)


@endpoint(routes, "wait_for")
async def wait_for(request: web.Request, call: Call) -> WaitForResult:
    body = call.body(WaitForRequest)
    return await commands(request).wait_for(
        call.session_id, body.pattern, body.timeout, body.since, terminal=body.terminal
    )
