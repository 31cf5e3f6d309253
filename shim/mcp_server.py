"""The stdio MCP server: every tool is a thin adapter over one daemon API call.

Parameters reuse the request models' field definitions, results are the reply models
(structured output) plus a short text rendering, and any `SshkeepError` becomes a tool error
whose text names the problem and the next step.
"""

from __future__ import annotations

from typing import Any

from mcp.server import MCPServer

from sshkeep import __version__
from sshkeep.common.client import ApiClient
from sshkeep.common.paths import Paths
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
from sshkeep.shim.tools_base import Tools

TOOL_GROUPS = (
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


def build_server(paths: Paths, client: ApiClient, tools: Tools | None = None) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer("sshkeep", version=__version__, instructions=INSTRUCTIONS)
    tools = tools or Tools(client, paths)
    for group in TOOL_GROUPS:
        group.register(server, tools)
    forbid_unknown_arguments(server)
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


async def run_stdio(paths: Paths) -> None:
    async with ApiClient(paths.socket) as client:
        tools = Tools(client, paths)
        server = build_server(paths, client, tools)
        tools.start_daemon_early()
        await server.run_stdio_async()
