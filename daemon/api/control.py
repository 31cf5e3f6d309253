"""Routes of secrets and people: answer_secret, a person's answer, take-over, the list of commands.

Neither answer route ever has the secret in its reply or its audit line: the audit entry gets
the secret's name, length, a SHA-256 prefix and who answered (the request's audit note).
"""

from __future__ import annotations

from aiohttp import web

from sshkeep.common.models.sessions import (
    AnswerQuestionRequest,
    AnswerSecretRequest,
    CommandList,
    CommandListQuery,
    CommandResult,
    ControlResult,
)
from sshkeep.daemon.api.audit import note_of
from sshkeep.daemon.api.core import Call, answers, caller, control, endpoint, guard, manager, note_decision
from sshkeep.daemon.api.peer import peer_of
from sshkeep.daemon.sessions.control import list_commands as list_session_commands
from sshkeep.daemon.sessions.secrets import SUDO_VALIDATE

routes = web.RouteTableDef()


@endpoint(routes, "answer_secret")
async def answer_secret(request: web.Request, call: Call) -> CommandResult:
    body = call.body(AnswerSecretRequest)
    if body.sudo:
        # Validating sudo types `sudo -v` at the prompt: the connection's policy decides, as for
        # any command the agent sends.
        decision = await guard(request).check_command(
            call.session_id, SUDO_VALIDATE, operation="answer_secret", by=caller(request)
        )
        note_decision(request, decision)
        if decision.approval is not None and not decision.allowed:
            return CommandResult(
                session_id=call.session_id,
                command_id="",
                command=SUDO_VALIDATE,
                status="approval_required",
                approval=decision.approval,
                hint=decision.approval.hint,
            )
        decision.raise_unless_allowed()
        guard(request).line_reset(call.session_id)
    res, typed = await answers(request).answer(
        call.session_id, name=body.name, sudo=body.sudo, timeout=body.timeout, by="agent"
    )
    if typed is not None:
        note_of(request).secret = typed.audit()
        guard(request).line_reset(call.session_id)  # the answer ended with Enter
    return res


@endpoint(routes, "answer_question")
async def answer_question(request: web.Request, call: Call) -> CommandResult:
    body = call.body(AnswerQuestionRequest)
    value = body.answer.get_secret_value() if body.answer is not None else None
    res, typed = await answers(request).answer(
        call.session_id, name=body.secret, value=value, timeout=body.timeout, by="person"
    )
    if typed is not None:
        note_of(request).secret = typed.audit()
        guard(request).line_reset(call.session_id)
    return res


@endpoint(routes, "take_control")
async def take_control(request: web.Request, call: Call) -> ControlResult:
    peer = peer_of(request)
    pid = (peer.pid or None) if peer is not None else None
    res = control(request).take(call.session_id, pid)
    await control(request).clients_follow(call.session_id)
    return res


@endpoint(routes, "release_control")
async def release_control(request: web.Request, call: Call) -> ControlResult:
    res = control(request).release(call.session_id)
    await control(request).clients_follow(call.session_id)
    return res


@endpoint(routes, "list_commands")
async def list_commands(request: web.Request, call: Call) -> CommandList:
    q = call.query(CommandListQuery)
    s = manager(request).get(call.session_id)
    return list_session_commands(s, q.since, q.limit)
