"""Routes of the guard rails: the dry run, and a person's answers to approval requests.

There is no route that changes a policy: only config.yml does.
"""

from __future__ import annotations

from aiohttp import web

from sshkeep.common.models.policy import (
    Approval,
    ApprovalList,
    ApproveRequest,
    CheckCommandRequest,
    CheckResult,
    DeclineRequest,
)
from sshkeep.daemon.api.core import Call, caller, endpoint, guard

routes = web.RouteTableDef()


@endpoint(routes, "check_command")
async def check_command(request: web.Request, call: Call) -> CheckResult:
    return await guard(request).dry_run(call.session_id, call.body(CheckCommandRequest).command)


@endpoint(routes, "list_approvals")
async def list_approvals(request: web.Request, call: Call) -> ApprovalList:
    g = guard(request)
    await g.sweep()
    return ApprovalList(approvals=g.list())


@endpoint(routes, "approve")
async def approve(request: web.Request, call: Call) -> Approval:
    body = call.body(ApproveRequest)
    return await guard(request).approve(
        call.params["approval_id"], body.grant, body.grant_seconds, body.route, caller(request)
    )


@endpoint(routes, "decline")
async def decline(request: web.Request, call: Call) -> Approval:
    return await guard(request).decline(
        call.params["approval_id"], call.body(DeclineRequest).route, caller(request)
    )
