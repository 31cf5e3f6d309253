"""The table of operations: every API call sshkeep has, written once.

One row per operation: its id (the MCP tool name, the OpenAPI operationId and the audit log's
`tool`), HTTP method and path, the models of its path parameters, query, body and reply, its
success status, and how an MCP client should treat it. The daemon's routes, the OpenAPI document,
the API client's methods, the audit log and the MCP tools are built from this table or checked
against it (tests/unit/test_operations.py fails when any of them disagrees).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

from sshkeep.common.models.admin import CleanupRequest, CleanupResult
from sshkeep.common.models.base import CommandPath, ConfigPath, JobPath, Request, SessionPath, TerminalPath
from sshkeep.common.models.configs import AskpassReply, AskpassRequest, ConfigList, ServerInfo
from sshkeep.common.models.files import (
    ExecRequest,
    ExecResult,
    ReadFileRequest,
    ReadFileResult,
    WriteFileRequest,
    WriteFileResult,
)
from sshkeep.common.models.jobs import (
    CloseTerminalResult,
    JobList,
    JobQuery,
    JobResult,
    JobsQuery,
    OpenTerminalRequest,
    StartJobRequest,
    StopJobRequest,
    TerminalInfo,
)
from sshkeep.common.models.policy import Approval as ApprovalReply
from sshkeep.common.models.policy import (
    ApprovalList,
    ApprovalPath,
    ApproveRequest,
    CheckCommandRequest,
    CheckResult,
    DeclineRequest,
)
from sshkeep.common.models.sessions import (
    AnswerQuestionRequest,
    AnswerSecretRequest,
    CloseResult,
    CommandList,
    CommandListQuery,
    CommandQuery,
    CommandResult,
    ControlResult,
    Health,
    InterruptRequest,
    OpenSessionRequest,
    ReconnectRequest,
    SearchRequest,
    SearchResult,
    SendCommandRequest,
    SendKeysRequest,
    SendKeysResult,
    SessionForHostRequest,
    SessionInfo,
    SessionList,
    Snapshot,
    SnapshotQuery,
    WaitForRequest,
    WaitForResult,
)

Method = Literal["GET", "POST", "DELETE"]
# How an MCP client should treat a tool (its annotations); None: the operation is not an MCP tool.
ToolKind = Literal["reads", "acts", "opens"]

MUTATING: frozenset[str] = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Operation:
    """One API call. `path` uses the path model's field names as placeholders."""

    id: str
    method: Method
    path: str
    summary: str
    reply: type[BaseModel] | None  # None: free-form JSON (the OpenAPI document)
    body: type[Request] | None = None
    query: type[Request] | None = None
    path_params: type[Request] | None = None
    status: int = 200
    tool: ToolKind | None = None
    # Not a read, yet sending it twice does no harm (see `repeatable`).
    retry_safe: bool = False

    @property
    def mutating(self) -> bool:
        return self.method in MUTATING

    def repeatable(self, body: BaseModel | None = None) -> bool:
        """Sending this call twice does what sending it once does: a read, or a body carrying the
        caller's idempotency key (send_command's `request_id`). A client may retry only these
        after the daemon went away under a call."""
        if not self.mutating or self.tool == "reads" or self.retry_safe:
            return True
        return getattr(body, "request_id", None) is not None

    def url(self, **params: str) -> str:
        """The path with its placeholders filled in (each value percent-quoted)."""
        from urllib.parse import quote

        return self.path.format(**{k: quote(v, safe="") for k, v in params.items()})


def _ops(*rows: Operation) -> dict[str, Operation]:
    table: dict[str, Operation] = {}
    for op in rows:
        if op.id in table:
            raise ValueError(f"operation {op.id!r} is in the table twice")
        table[op.id] = op
    return table


S = SessionPath
SID = "/v1/sessions/{session_id}"

OPERATIONS: dict[str, Operation] = _ops(
    # --- daemon ---------------------------------------------------------------------------------
    Operation("health", "GET", "/v1/health", "Daemon health, socket and session count", Health),
    Operation("openapi", "GET", "/v1/openapi.json", "This document", None),
    # --- connections ----------------------------------------------------------------------------
    Operation(
        "list_available_configs",
        "GET",
        "/v1/configs",
        "Configured connections (never a secret), broken entries, and ~/.ssh/config aliases",
        ConfigList,
        tool="reads",
    ),
    Operation(
        "get_server_info",
        "GET",
        "/v1/configs/{config_name}/info",
        "The markdown notes of a configured connection",
        ServerInfo,
        path_params=ConfigPath,
        tool="reads",
    ),
    Operation(
        "askpass",
        "POST",
        "/v1/askpass",
        "For sshkeep's SSH_ASKPASS helper only: answers a login prompt of a session's ssh",
        AskpassReply,
        body=AskpassRequest,
    ),
    # --- sessions -------------------------------------------------------------------------------
    Operation(
        "list_sessions", "GET", "/v1/sessions", "Every session with its state", SessionList, tool="reads"
    ),
    Operation(
        "open_session",
        "POST",
        "/v1/sessions",
        "Open a persistent SSH terminal",
        SessionInfo,
        body=OpenSessionRequest,
        status=201,
        tool="opens",
    ),
    Operation(
        "session_for_host",
        "POST",
        "/v1/sessions/for-host",
        "An idle session of this host (config name or destination), opened if there is none",
        SessionInfo,
        body=SessionForHostRequest,
        # Again after a restart: the session the first call opened, once ready, or another one (an
        # idle session more, never a command typed twice).
        retry_safe=True,
    ),
    Operation("get_session", "GET", SID, "One session's state", SessionInfo, path_params=S),
    Operation(
        "close_session",
        "DELETE",
        SID,
        "Close a session (kills its ssh)",
        CloseResult,
        path_params=S,
        tool="acts",
    ),
    Operation(
        "reconnect_session",
        "POST",
        SID + "/reconnect",
        "Start a fresh ssh in a disconnected session",
        SessionInfo,
        body=ReconnectRequest,
        path_params=S,
        tool="opens",
    ),
    Operation(
        "cleanup_dead_sessions",
        "POST",
        "/v1/sessions/cleanup",
        "Close disconnected sessions and drop finished jobs older than max_age_seconds",
        CleanupResult,
        body=CleanupRequest,
        tool="acts",
    ),
    # --- commands and the terminal --------------------------------------------------------------
    Operation(
        "send_command",
        "POST",
        SID + "/commands",
        "Run a command and wait for it to end",
        CommandResult,
        body=SendCommandRequest,
        path_params=S,
        tool="acts",
    ),
    Operation(
        "get_command",
        "GET",
        SID + "/commands/{command_id}",
        "Status and output of a command (`last` for the latest); pages and waits",
        CommandResult,
        query=CommandQuery,
        path_params=CommandPath,
        tool="reads",
    ),
    Operation(
        "send_keys",
        "POST",
        SID + "/keys",
        "Send tmux key names or literal text",
        SendKeysResult,
        body=SendKeysRequest,
        path_params=S,
        tool="acts",
    ),
    Operation(
        "interrupt_command",
        "POST",
        SID + "/interrupt",
        "Ctrl-C the running command",
        CommandResult,
        body=InterruptRequest,
        path_params=S,
        tool="acts",
    ),
    Operation(
        "get_snapshot",
        "GET",
        SID + "/screen",
        "The pane's screen (and scrollback)",
        Snapshot,
        query=SnapshotQuery,
        path_params=S,
        tool="reads",
    ),
    Operation(
        "wait_for",
        "POST",
        SID + "/wait",
        "Wait until output matches a pattern",
        WaitForResult,
        body=WaitForRequest,
        path_params=S,
        tool="reads",
    ),
    Operation(
        "search_output",
        "POST",
        SID + "/search",
        "Regex search over a command's (or every command's) whole output, with context lines",
        SearchResult,
        body=SearchRequest,
        path_params=S,
        tool="reads",
    ),
    Operation(
        "list_commands",
        "GET",
        SID + "/commands",
        "Every command of the session, whoever typed it (agent, keys, a person), oldest first",
        CommandList,
        query=CommandListQuery,
        path_params=S,
        tool="reads",
    ),
    # --- secrets and people ---------------------------------------------------------------------
    Operation(
        "answer_secret",
        "POST",
        SID + "/answer-secret",
        "Type a configured secret into the pending password/token question, then wait like send_command",
        CommandResult,
        body=AnswerSecretRequest,
        path_params=S,
        tool="acts",
    ),
    Operation(
        "answer_question",
        "POST",
        SID + "/answer",
        "For a person (`sshkeep answer`): type an answer or a configured secret into the pending question",
        CommandResult,
        body=AnswerQuestionRequest,
        path_params=S,
    ),
    Operation(
        "take_control",
        "POST",
        SID + "/control",
        "For a person (`sshkeep attach --take`): hold the terminal; the agent's typing is refused",
        ControlResult,
        path_params=S,
    ),
    Operation(
        "release_control",
        "DELETE",
        SID + "/control",
        "Hand the terminal back to the agent; lists the commands the person ran",
        ControlResult,
        path_params=S,
    ),
    # --- terminals and jobs ---------------------------------------------------------------------
    Operation(
        "open_terminal",
        "POST",
        SID + "/terminals",
        "Open another shell in the session, on its existing SSH connection (no new login)",
        TerminalInfo,
        body=OpenTerminalRequest,
        path_params=S,
        status=201,
        tool="opens",
    ),
    Operation(
        "close_terminal",
        "DELETE",
        SID + "/terminals/{terminal}",
        "Close one of the session's other terminals",
        CloseTerminalResult,
        path_params=TerminalPath,
        tool="acts",
    ),
    Operation(
        "start_job",
        "POST",
        SID + "/jobs",
        "Run a long-lived command (server, watcher, build) as a job in a terminal of its own",
        JobResult,
        body=StartJobRequest,
        path_params=S,
        status=201,
        tool="acts",
    ),
    Operation(
        "list_jobs",
        "GET",
        "/v1/jobs",
        "Every job: status, exit code, start time, last output line",
        JobList,
        query=JobsQuery,
        tool="reads",
    ),
    Operation(
        "get_job",
        "GET",
        "/v1/jobs/{job_id}",
        "A job's status and (a page of) its output; waits for its end",
        JobResult,
        query=JobQuery,
        path_params=JobPath,
        tool="reads",
    ),
    Operation(
        "stop_job",
        "POST",
        "/v1/jobs/{job_id}/stop",
        "Stop a job: Ctrl-C, then SIGTERM, then SIGKILL, each after a bounded wait",
        JobResult,
        body=StopJobRequest,
        path_params=JobPath,
        tool="acts",
    ),
    # --- files and side commands ----------------------------------------------------------------
    Operation(
        "read_remote_file",
        "POST",
        SID + "/files/read",
        "Read (a range of) a remote file over the side channel",
        ReadFileResult,
        body=ReadFileRequest,
        path_params=S,
        tool="reads",
    ),
    Operation(
        "write_remote_file",
        "POST",
        SID + "/files/write",
        "Write or append a remote file over the side channel",
        WriteFileResult,
        body=WriteFileRequest,
        path_params=S,
        tool="acts",
    ),
    Operation(
        "exec_command",
        "POST",
        SID + "/exec",
        "Run a command beside the terminal (no tty, empty stdin)",
        ExecResult,
        body=ExecRequest,
        path_params=S,
        tool="acts",
    ),
    # --- guard rails ------------------------------------------------------------------------------
    Operation(
        "check_command",
        "POST",
        SID + "/policy/check",
        "Dry run: how the session's policy classifies a command and what it would do (runs nothing)",
        CheckResult,
        body=CheckCommandRequest,
        path_params=S,
        tool="reads",
    ),
    # Approvals are answered by a person (CLI, HTTP, MCP elicitation): never MCP tools an agent calls.
    Operation("list_approvals", "GET", "/v1/approvals", "Approval requests and grants", ApprovalList),
    Operation(
        "approve",
        "POST",
        "/v1/approvals/{approval_id}/approve",
        "Approve a pending request: the exact command may then run (once, or until a timed grant ends)",
        ApprovalReply,
        body=ApproveRequest,
        path_params=ApprovalPath,
    ),
    Operation(
        "decline",
        "POST",
        "/v1/approvals/{approval_id}/decline",
        "Decline a pending request",
        ApprovalReply,
        body=DeclineRequest,
        path_params=ApprovalPath,
    ),
)

BY_ROUTE: dict[tuple[str, str], Operation] = {(op.method, op.path): op for op in OPERATIONS.values()}


def op_for(method: str, path: str) -> Operation | None:
    """The operation of a route (`path` as written in the table, with placeholders)."""
    return BY_ROUTE.get((method, path))
