"""What every group of MCP tools needs: the table-derived tool decorator and parameters, the API
client with daemon auto-start, error mapping and result rendering."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from mcp.server import MCPServer
from mcp.server.elicitation import render_elicitation_schema
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import (
    CallToolResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    InputRequiredResult,
    TextContent,
    ToolAnnotations,
)
from pydantic import BaseModel, Field

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import ApprovalRequired, DaemonUnavailable, SshkeepError, UnsafeRuntimeDir
from sshkeep.common.models.policy import APPROVAL_ID_PATTERN, Approval, ApproveRequest, DeclineRequest
from sshkeep.common.models.sessions import CommandResult
from sshkeep.common.operations import OPERATIONS, ToolKind
from sshkeep.common.paths import Paths
from sshkeep.shim.autostart import ensure_daemon

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)
F = TypeVar("F", bound=Callable[..., Any])

ANNOTATIONS: dict[ToolKind, ToolAnnotations] = {
    "reads": ToolAnnotations(
        read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
    ),
    "acts": ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
    ),
    "opens": ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
    ),
}


def tool(server: MCPServer[Any], op_id: str) -> Callable[[F], F]:
    """Register the decorated function as the MCP tool of operation `op_id` (same name, its
    annotations from the table of operations)."""
    op = OPERATIONS[op_id]
    if op.tool is None:
        raise ValueError(f"operation {op_id!r} is not an MCP tool in the table")

    def register(fn: F) -> F:
        if fn.__name__ != op_id:
            raise ValueError(f"tool function {fn.__name__!r} must be named like its operation {op_id!r}")
        assert op.tool is not None
        server.tool(name=op_id, annotations=ANNOTATIONS[op.tool])(fn)
        return fn

    return register


def param(op_id: str, name: str) -> Any:
    """The FieldInfo of a parameter of operation `op_id` (path, query or body model), so each
    bound and description is written once, in `sshkeep.common.models`."""
    op = OPERATIONS[op_id]
    for model in (op.path_params, op.query, op.body):
        if model is not None and name in model.model_fields:
            return model.model_fields[name]
    raise KeyError(f"operation {op_id!r} has no parameter {name!r}")


FORM_KEY = "sshkeep_approval"


class ApprovalForm(BaseModel):
    """The yes/no form of an approval elicitation."""

    approve: bool = Field(description="Run exactly this command now?")


def can_elicit(ctx: Context | None) -> bool:
    """Whether the MCP client declared form-mode elicitation."""
    if ctx is None:
        return False
    try:
        caps = ctx.client_capabilities
    except (AttributeError, ValueError, LookupError):
        return False
    return caps is not None and caps.elicitation is not None


def elicitation_message(a: Approval) -> str:
    return (
        f"sshkeep asks before running this on {a.host} (session {a.session_id}, {a.operation}):\n\n"
        f"{a.command}\n\n"
        f"Why: {a.reason}\n"
        "Approve runs exactly this, once. Decline (or no answer) runs nothing."
    )


@dataclass
class Tools:
    """Shared by the tool modules: call the daemon (starting it if needed) and shape results."""

    client: ApiClient
    paths: Paths
    _starting: asyncio.Task[object] | None = field(default=None, init=False, repr=False)

    def start_daemon_early(self) -> None:
        """Check (or start) the daemon now, while the MCP client is still initialising, so the
        first tool call does not pay for the daemon's start-up."""
        self._starting = asyncio.create_task(self._ensure_quietly(), name="sshkeep-daemon-start")

    async def _ensure_quietly(self) -> object:
        try:
            return await ensure_daemon(self.client, self.paths)
        except SshkeepError as err:  # the first tool call tries again and reports it
            log.warning("daemon_start_failed", error=err.message)
            return None

    async def call(self, fn: Callable[[], Awaitable[M]]) -> M:
        if self._starting is not None:
            await asyncio.shield(self._starting)
        try:
            try:
                return await fn()
            except (DaemonUnavailable, UnsafeRuntimeDir):
                await ensure_daemon(self.client, self.paths)
                return await fn()
        except SshkeepError as err:
            raise ToolError(f"[{err.code}] {err.message}\nNext: {err.hint}") from err

    async def guarded(self, ctx: Context | None, fn: Callable[[], Awaitable[M]]) -> M | InputRequiredResult:
        """Call `fn`; when the policy asks a person first and the client can elicit, show the person
        the exact command in a yes/no form, record the answer (route mcp_elicitation) and retry.

        Protocol 2026-07-28 and later carry the form inside an `InputRequiredResult` (the client
        asks its user and calls the tool again with the answer); earlier ones send it mid-call.
        Without elicitation, or without an answer, the call fails closed: the reply stays
        approval_required and its hint names `sshkeep approve ID`.
        """
        note = await self._take_answer(ctx)  # a retry carrying the person's answer (2026-07-28+)
        first = await self._attempt(fn, elicit=note is None)
        if isinstance(first, str):  # approval required and not yet asked: show the form
            form = await self._elicit(ctx, first)
            if isinstance(form, InputRequiredResult):
                return form
            note = form
            first = await self._attempt(fn, elicit=False)
        assert not isinstance(first, str)
        if note == "declined" and isinstance(first, CommandResult) and first.status == "approval_required":
            first.hint = (first.hint or "") + " The person declined it in the approval form."
        return first

    async def _attempt(self, fn: Callable[[], Awaitable[M]], elicit: bool = True) -> M | str:
        """`fn`'s reply, or the approval id when the daemon asks a person first (and `elicit`)."""
        try:
            res = await self.call(fn)
        except ToolError as exc:
            cause = exc.__cause__
            if (
                elicit
                and isinstance(cause, ApprovalRequired)
                and isinstance(cause.context.get("approval_id"), str)
            ):
                return str(cause.context["approval_id"])
            raise
        if elicit and isinstance(res, CommandResult) and res.status == "approval_required" and res.approval:
            return res.approval.approval_id
        return res

    async def _elicit(self, ctx: Context | None, approval_id: str) -> str | InputRequiredResult:
        """`approved`, `declined`, `none` (no answer: fail closed), or the form to hand the client."""
        if not can_elicit(ctx):
            return "none"
        assert ctx is not None
        try:
            listing = await self.client.list_approvals()
            approval = next(a for a in listing.approvals if a.approval_id == approval_id)
            message = elicitation_message(approval)
            if not ctx.session.can_send_request:
                params = ElicitRequestFormParams(
                    message=message, requested_schema=render_elicitation_schema(ApprovalForm)
                )
                return InputRequiredResult(
                    input_requests={FORM_KEY: ElicitRequest(params=params)}, request_state=approval_id
                )
            answer = await ctx.elicit(message, ApprovalForm)
        except Exception as exc:  # no answer of any kind: fail closed
            log.warning("elicitation_failed", approval_id=approval_id, error=f"{type(exc).__name__}: {exc}")
            return "none"
        approve = answer.action == "accept" and answer.data.approve
        return await self._record(approval_id, approve, answered=answer.action in ("accept", "decline"))

    async def _take_answer(self, ctx: Context | None) -> str | None:
        """On a retry that carries the person's answer to our form: record it (approve or decline)."""
        if ctx is None:
            return None
        try:
            state, responses = ctx.request_state, ctx.input_responses
        except (AttributeError, ValueError, LookupError):
            return None
        if (
            not state
            or not responses
            or FORM_KEY not in responses
            or not re.match(APPROVAL_ID_PATTERN, state)
        ):
            return None
        answer = responses[FORM_KEY]
        if not isinstance(answer, ElicitResult):
            return "none"
        content = answer.content or {}
        approve = answer.action == "accept" and content.get("approve") is True
        return await self._record(state, approve, answered=answer.action in ("accept", "decline"))

    async def _record(self, approval_id: str, approve: bool, answered: bool) -> str:
        try:
            if approve:
                await self.call(
                    lambda: self.client.approve(approval_id, ApproveRequest(route="mcp_elicitation"))
                )
                return "approved"
            if answered:
                await self.call(
                    lambda: self.client.decline(approval_id, DeclineRequest(route="mcp_elicitation"))
                )
                return "declined"
        except ToolError as exc:  # e.g. expired meanwhile: the retry asks again, fail closed
            log.warning("elicitation_answer_not_recorded", approval_id=approval_id, error=str(exc))
        return "none"

    @staticmethod
    def result(model: BaseModel, text: str) -> CallToolResult:
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=model.model_dump(mode="json")
        )
