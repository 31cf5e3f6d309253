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
from sshkeep.shim.tools_base import SshkeepServer, Tools, lean_input, lean_output

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


def build_server(paths: Paths, client: ApiClient, tools: Tools | None = None) -> MCPServer[Any]:
    server: MCPServer[Any] = SshkeepServer("sshkeep", version=__version__, instructions=INSTRUCTIONS)
    tools = tools or Tools(client, paths)
    for group in TOOL_GROUPS:
        group.register(server, tools)
    forbid_unknown_arguments(server)
    lean_schemas(server)
    return server


def lean_schemas(server: MCPServer[Any]) -> None:
    """Tool schemas carry what a model needs once: no pydantic titles, output schemas types only."""
    manager = getattr(server, "_tool_manager", None)
    for tool in manager.list_tools() if manager is not None else []:
        tool.parameters = lean_input(tool.parameters)
        meta = tool.fn_metadata
        if meta.output_schema is not None:
            meta.output_schema = lean_output(meta.output_schema)
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


async def run_stdio(paths: Paths) -> None:
    async with ApiClient(paths.socket) as client:
        tools = Tools(client, paths)
        server = build_server(paths, client, tools)
        tools.start_daemon_early()
        await server.run_stdio_async()
