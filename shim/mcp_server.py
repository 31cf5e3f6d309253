"""The stdio MCP server: every tool is a thin adapter over one daemon API call.

Parameters reuse the request models' field definitions, results are the reply models
(structured output) plus a short text rendering, and any `SshkeepError` becomes a tool error
whose text names the problem and the next step.

Start-up is kept to what a bare SDK server costs: `run_stdio` answers `initialize` before the
tool modules (and the wire models and API client they need) are imported; the first other
message registers the tools, before it is handled (`LazyTools`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.stdio import stdio_server

from sshkeep import __version__
from sshkeep.common.paths import Paths
from sshkeep.shim.early import EarlyStart
from sshkeep.shim.stdio import event_loop_stdio

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


INSTRUCTIONS = """\
sshkeep keeps persistent, interactive SSH terminals for you. Sessions survive client and daemon
restarts, and a person can watch them in tmux.
- open_session(host) takes a name from list_available_configs, else an ssh destination.
- send_command runs one shell command and returns when it ends, with exit_code and only that
  command's output. Non-zero exit codes are results, not errors.
- status "running": follow with get_command(wait=...), or interrupt_command.
- status "waiting_input": the terminal asks something (password, [y/N], unclosed quote, full-screen
  program). Answer with send_keys, then get_command(wait=...); or interrupt_command.
- Long output is paged: get_command(offset=next_offset).
- get_snapshot shows the screen; send_keys types keys (tmux names like Enter, C-c, Up, else text).
- Secrets never pass through you: at a password/token question, answer_secret(session_id, name)
  types a secret configured in config.yml; when none fits, ask your user to run the
  `sshkeep answer <session>` command the hint names. For sudo: answer_secret(..., sudo=true).
- Error human_control: a person holds the terminal; reads work, typing waits until they release it.
  list_commands shows every command, including those a person typed (source person).
- Servers, watchers, `tail -f`, long builds: start_job (returns at once, or when `ready`), then
  list_jobs / get_job / stop_job. Jobs survive restarts; durable=true also survives ssh dropping.
- Parallel work in one session: open_terminal, then pass `terminal` to the command tools.
- status "approval_required" (or error approval_required): the connection's policy asks a person
  first; nothing ran. The person approves with `sshkeep approve ID`; then send the same call again.
  check_command tells beforehand how a command is classified and what the policy will do.
"""


def new_server(middleware: list[Any] | None = None) -> MCPServer[Any]:
    return MCPServer("sshkeep", version=__version__, instructions=INSTRUCTIONS, middleware=middleware)


def register_tools(server: MCPServer[Any], tools: Tools) -> None:
    for group in tool_groups():
        group.register(server, tools)
    forbid_unknown_arguments(server)


def build_server(paths: Paths, client: ApiClient, tools: Tools | None = None) -> MCPServer[Any]:
    """The server with every tool registered (what `run_stdio` has once the first request came)."""
    from sshkeep.shim.tools_base import Tools

    server = new_server()
    register_tools(server, tools or Tools(client, paths))
    return server


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
        tools.start_daemon_early(self.started)

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.method != "initialize":
            self.ready()
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
        stdin, stdout = streams
        async with stdio_server(stdin=stdin, stdout=stdout) as (read_stream, write_stream):  # type: ignore[arg-type]
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())
