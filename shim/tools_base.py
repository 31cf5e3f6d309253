"""What every group of MCP tools needs: the table-derived tool decorator and parameters, the API
client with daemon auto-start, error mapping and result rendering."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import ApprovalRequired, DaemonUnavailable, SshkeepError
from sshkeep.common.models.policy import Approval, ApproveRequest, DeclineRequest
from sshkeep.common.models.sessions import CommandResult
from sshkeep.common.operations import OPERATIONS, ToolKind
from sshkeep.common.paths import Paths
from sshkeep.shim.autostart import ensure_daemon

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


class ApprovalForm(BaseModel):
    """The yes/no form of an approval elicitation."""

    approve: bool = Field(description="Run exactly this command now?")


def can_elicit(ctx: Context | None) -> bool:
    """Whether the MCP client declared form-mode elicitation."""
    if ctx is None:
        return False
    try:
        caps = ctx.request_context.session.client_capabilities
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

    async def call(self, fn: Callable[[], Awaitable[M]]) -> M:
        try:
            try:
                return await fn()
            except DaemonUnavailable:
                await ensure_daemon(self.client, self.paths)
                return await fn()
        except SshkeepError as err:
            raise ToolError(f"[{err.code}] {err.message}\nNext: {err.hint}") from err

    async def guarded(self, ctx: Context | None, fn: Callable[[], Awaitable[M]]) -> M:
        """Call `fn`; when the policy asks a person first and the client can elicit, show the person
        the exact command in a yes/no form, record the answer (route mcp_elicitation) and retry.
        Without elicitation, or without an answer, the call fails closed: the reply stays
        approval_required and its hint names `sshkeep approve ID`."""
        try:
            res = await self.call(fn)
        except ToolError as exc:
            cause = exc.__cause__
            if not isinstance(cause, ApprovalRequired) or not isinstance(
                cause.context.get("approval_id"), str
            ):
                raise
            if not await self._elicit(ctx, str(cause.context["approval_id"])):
                raise
            return await self.call(fn)
        if isinstance(res, CommandResult) and res.status == "approval_required" and res.approval is not None:
            if await self._elicit(ctx, res.approval.approval_id):
                return await self.call(fn)
            res.hint = (res.hint or "") + self._declined_note
        return res

    _declined_note = ""

    async def _elicit(self, ctx: Context | None, approval_id: str) -> bool:
        """True when the person approved through the elicitation form."""
        self._declined_note = ""
        if not can_elicit(ctx):
            return False
        assert ctx is not None
        try:
            listing = await self.client.list_approvals()
            approval = next(a for a in listing.approvals if a.approval_id == approval_id)
            answer = await ctx.elicit(elicitation_message(approval), ApprovalForm)
        except Exception:  # no answer of any kind: fail closed
            return False
        if answer.action == "accept" and answer.data.approve:
            await self.call(lambda: self.client.approve(approval_id, ApproveRequest(route="mcp_elicitation")))
            return True
        if answer.action in ("accept", "decline"):
            await self.call(lambda: self.client.decline(approval_id, DeclineRequest(route="mcp_elicitation")))
            self._declined_note = " The person declined it in the approval form."
        return False

    @staticmethod
    def result(model: BaseModel, text: str) -> CallToolResult:
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=model.model_dump(mode="json")
        )
