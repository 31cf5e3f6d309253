"""What every group of MCP tools needs: the API client, error mapping, result rendering."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

from common.client import ApiClient
from common.errors import DaemonUnavailable, SshkeepError
from common.paths import Paths
from shim.autostart import ensure_daemon

M = TypeVar("M", bound=BaseModel)

READ_ONLY = ToolAnnotations(
    read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True
)
ACTS = ToolAnnotations(
    read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=True
)
OPENS = ToolAnnotations(
    read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True
)


def field(model: type[BaseModel], name: str) -> Any:
    """The FieldInfo of a request model, so tool schemas come from `common.models`."""
    return model.model_fields[name]


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

    @staticmethod
    def result(model: BaseModel, text: str) -> CallToolResult:
        return CallToolResult(
            content=[TextContent(type="text", text=text)], structured_content=model.model_dump(mode="json")
        )
