"""The stdio MCP server: every tool is a thin adapter over one daemon API call.

Parameters reuse the request models' field definitions, results are the reply models
(structured output) plus a short text rendering, and any `SshkeepError` becomes a tool error
whose text names the problem and the next step.

Start-up is kept to what a bare SDK server costs: `run_stdio` answers `initialize` before the
tool modules (and the wire models and API client they need) are imported; the first other
message registers the tools, before it is handled (`LazyTools`).
"""

from __future__ import annotations

import gc
from typing import TYPE_CHECKING, Any

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

from sshkeep import __version__
from sshkeep.common.paths import Paths
from sshkeep.shim.early import EarlyStart
from sshkeep.shim.server import SshkeepServer
from sshkeep.shim.stdio import event_loop_stdio, serve_eras

if TYPE_CHECKING:
    from types import ModuleType

    from sshkeep.common.client import ApiClient
    from sshkeep.shim.tools_base import Tools


def tool_groups() -> tuple[ModuleType, ...]:
    """The tool modules, in the order their tools are listed (imported when first needed)."""
    from sshkeep.shim import (
        tools_admin,
        tools_commands,
        tools_configs,
        tools_files,
        tools_jobs,
        tools_policy,
        tools_secrets,
        tools_sessions,
    )

    return (
        tools_configs,
        tools_sessions,
        tools_commands,
        tools_secrets,
        tools_jobs,
        tools_files,
        tools_admin,
        tools_policy,
    )


# The tools of the everyday loop (find a host, run, follow, answer, stop, search, read, write): what
# an agent reads every session. Their names, descriptions and input schemas stay under 1,500
# tokens (tests/unit/test_economy.py).
CORE_TOOLS = (
    "list_available_configs",
    "send_command",
    "get_command",
    "send_keys",
    "interrupt_command",
    "search_output",
    "read_remote_file",
    "write_remote_file",
)

INSTRUCTIONS = """\
sshkeep keeps persistent SSH terminals. send_command(host=<name from list_available_configs>,
command=...) runs a command and returns its exit code and output (reuses or opens the host's
session; later calls may pass the session_id it returned). Non-zero exit codes are results.
status running: get_command(wait=...) follows it. status waiting_input: the hint says how to answer
(send_keys returns the result). Long output: search_output finds lines, get_command pages.
Secrets never pass through you: at a password question answer_secret(session_id, name) types one
configured in config.yml; else ask your user to run the `sshkeep answer` command the hint names.
Files: read_remote_file / write_remote_file, not the terminal.
status approval_required: the connection's policy asks a person first (nothing ran); they approve
with `sshkeep approve ID`, then send the same call again. check_command tells beforehand.
Servers, watchers, `tail -f`: start_job, then get_job / stop_job. Parallel shells on one connection:
open_terminal, then pass `terminal`.
"""


def new_server(middleware: list[Any] | None = None) -> MCPServer[Any]:
    server = SshkeepServer("sshkeep", version=__version__, instructions=INSTRUCTIONS, middleware=middleware)
    if not tracing():
        # The SDK's span per message does nothing until a tracer provider is installed, and costs
        # a context manager, a dict and several calls on every tool call.
        server.middleware[:] = [m for m in server.middleware if type(m).__name__ != "OpenTelemetryMiddleware"]
    return server


def tracing() -> bool:
    """Whether OpenTelemetry tracing is set up in this process (e.g. under `opentelemetry-instrument`)."""
    from opentelemetry import trace

    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def register_tools(server: MCPServer[Any], tools: Tools) -> None:
    for group in tool_groups():
        group.register(server, tools)
    forbid_unknown_arguments(server)
    lean_schemas(server)


def build_server(paths: Paths, client: ApiClient, tools: Tools | None = None) -> MCPServer[Any]:
    """The server with every tool registered (what `run_stdio` has once the first request came)."""
    from sshkeep.shim.tools_base import Tools

    server = new_server()
    register_tools(server, tools or Tools(client, paths))
    return server


def lean_schemas(server: MCPServer[Any]) -> None:
    """Tool schemas carry what a model needs once: no pydantic titles, output schemas types only."""
    from sshkeep.common.operations import OPERATIONS
    from sshkeep.shim.tools_base import lean_input, reply_schema

    manager = getattr(server, "_tool_manager", None)
    for tool in manager.list_tools() if manager is not None else []:
        tool.parameters = lean_input(tool.parameters)
        meta = tool.fn_metadata
        reply = OPERATIONS[tool.name].reply
        meta.output_schema = reply_schema(reply) if reply is not None else None
        # Every tool returns a CallToolResult whose structured content is the daemon's reply, which
        # the API client validated into its model already: the SDK need not validate it again (a
        # schema without a model is published, not checked).
        meta.output_model = None
        tool.__dict__.pop("output_schema", None)  # a cached_property: recompute from the lean one


def forbid_unknown_arguments(server: MCPServer[Any]) -> None:
    """Make every tool refuse arguments it does not know (a misspelt `timeout` must not pass silently).

    The SDK builds a permissive argument model per tool; tighten each one and say so in its schema.
    """
    manager = getattr(server, "_tool_manager", None)
    for tool in manager.list_tools() if manager is not None else []:
        model = tool.fn_metadata.arg_model
        model.model_config["extra"] = "forbid"
        model.model_rebuild(force=True)
        tool.parameters["additionalProperties"] = False


class LazyTools:
    """Server middleware: registers the tools (importing their modules, the wire models and the
    API client) when the first message other than `initialize` arrives, before it is handled,
    and starts checking the daemon then."""

    def __init__(self, paths: Paths, started: EarlyStart | None) -> None:
        self.paths = paths
        self.started = started
        self.server: MCPServer[Any] | None = None
        self.client: ApiClient | None = None

    def ready(self) -> None:
        if self.client is not None or self.server is None:
            return
        from sshkeep.common.client import ApiClient
        from sshkeep.shim.tools_base import Tools

        self.client = ApiClient(self.paths.socket)
        tools = Tools(self.client, self.paths)
        register_tools(self.server, tools)
        # What is loaded by now (modules, models, schemas) lives as long as the shim: out of the
        # collector's sight, its full passes no longer stall a tool call for tens of milliseconds.
        gc.freeze()
        tools.start_daemon_early(self.started)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "initialize":
            self.ready()
            # Registered: later messages need not pass through here (the chain is composed per
            # message from this list).
            if self.server is not None and self in self.server.middleware:
                self.server.middleware.remove(self)
        return await call_next(ctx)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


async def run_stdio(paths: Paths, started: EarlyStart | None = None) -> None:
    lazy = LazyTools(paths, started)
    server = lazy.server = new_server(middleware=[lazy])
    try:
        await serve_stdio(server)
    finally:
        await lazy.close()


async def serve_stdio(server: MCPServer[Any]) -> None:
    """The SDK's stdio server, reading and writing on the event loop (`shim/stdio.py`) when it can."""
    lowlevel = getattr(server, "_lowlevel_server", None)
    if lowlevel is None:
        await server.run_stdio_async()
        return
    async with event_loop_stdio() as streams:
        if streams is None:
            await server.run_stdio_async()
            return
        await serve_eras(lowlevel, *streams)
