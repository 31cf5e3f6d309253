"""What every group of MCP tools needs: the table-derived tool decorator and parameters, the API
client with daemon auto-start, error mapping and result rendering."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog
from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import DaemonUnavailable, SshkeepError
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
            except DaemonUnavailable:
                await ensure_daemon(self.client, self.paths)
                return await fn()
        except SshkeepError as err:
            raise ToolError(f"[{err.code}] {err.message}\nNext: {err.hint}") from err

    @staticmethod
    def result(model: BaseModel, text: str) -> CallToolResult:
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=model.model_dump(mode="json")
        )
