"""The async API client (HTTP over the daemon's Unix socket), used by the shim and the CLI.

Transport failures become `DaemonUnavailable`; API errors come back as the same `SshkeepError`
subclass the daemon raised. Before anything is sent on a new connection, the socket's dir and file
must be ours and the server must run as our uid (see `sshkeep.common.rundir`); otherwise the
request fails with `UnsafeRuntimeDir` and nothing reaches the socket.

Calls go over keep-alive connections (`sshkeep.common.httppool`, standard library only: the shim
starts without importing an HTTP library). Each reply is validated into its model once; the model
keeps the JSON it came from (`Reply.wire`), so the MCP shim passes that on as structured content
instead of dumping the model again.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel, ValidationError
from pydantic_core import from_json

from sshkeep.common.errors import (
    CallInterrupted,
    DaemonUnavailable,
    SshkeepError,
    UnsafeRuntimeDir,
    from_payload,
)
from sshkeep.common.httppool import Pool
from sshkeep.common.models.admin import CleanupRequest, CleanupResult
from sshkeep.common.models.base import Reply
from sshkeep.common.models.configs import ConfigList, ServerInfo
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
from sshkeep.common.models.policy import (
    Approval,
    ApprovalList,
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
from sshkeep.common.operations import OPERATIONS
from sshkeep.common.rundir import peer_problem, socket_problem
from sshkeep.common.unixhttp import HttpUnavailable

R = TypeVar("R", bound=BaseModel)

_JSON_BODY = {"Content-Type": "application/json"}
URL_CACHE_SIZE = 4096


def _parse_json(body: bytes) -> Any:
    """A reply's JSON: pydantic's parser (twice as fast as json.loads, the same objects), and
    json.loads for what only it takes: a lone UTF-16 surrogate escape (e.g. a remote file name
    that is not UTF-8, kept as its bytes' surrogates)."""
    try:
        return from_json(body)
    except ValueError:
        return json.loads(body)


def trust_socket(path: Path) -> None:
    """Before connecting: the socket's dir and file must be ours (else `UnsafeRuntimeDir`)."""
    problem = socket_problem(path)
    if problem is not None:
        raise UnsafeRuntimeDir(f"refusing to talk to {path}: {problem}")


def trust_peer(path: Path, sock: socket.socket) -> None:
    """After connecting, before sending: the server must run as our uid (else `UnsafeRuntimeDir`)."""
    problem = peer_problem(sock, path)
    if problem is not None:
        raise UnsafeRuntimeDir(f"refusing to talk to {path}: {problem}")


class ApiClient:
    """Keep-alive connections to one daemon socket."""

    def __init__(self, socket_path: Path, timeout: float = 120.0) -> None:
        self.socket_path = socket_path
        self._timeout = timeout
        self._pool: Pool | None = None
        # Each operation's filled-in paths (a few per session): filling one costs more than the rest
        # of `call`.
        self._urls: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _http(self) -> Pool:
        if self._pool is None:
            path = self.socket_path
            self._pool = Pool(
                str(path), check=lambda sock: trust_peer(path, sock), precheck=lambda: trust_socket(path)
            )
        return self._pool

    async def retarget(self, socket_path: Path) -> None:
        """Talk to another socket from now on (the daemon moved to an unpredictable runtime dir)."""
        if socket_path != self.socket_path:
            await self.close()
            self.socket_path = socket_path

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def request(
        self,
        method: str,
        path: str,
        model: type[R],
        body: BaseModel | None = None,
        params: dict[str, str] | None = None,
    ) -> R:
        # Straight to UTF-8 bytes: model_dump_json would make a str of a file's content first.
        data = body.__pydantic_serializer__.to_json(body, exclude_none=True) if body is not None else None
        target = f"{path}?{urlencode(params)}" if params else path
        try:
            async with asyncio.timeout(self._timeout):
                resp = await self._http().request(
                    method, target, data, _JSON_BODY if data is not None else {}
                )
        except HttpUnavailable as exc:
            raise DaemonUnavailable(
                f"no sshkeep daemon answers on {self.socket_path} ({exc})", sent=exc.sent
            ) from exc
        except TimeoutError as exc:
            raise DaemonUnavailable(
                f"the daemon on {self.socket_path} did not answer in time", sent=True
            ) from exc
        status = resp.status
        try:
            payload: Any = _parse_json(resp.body)
        except ValueError as exc:  # not JSON, or not UTF-8
            raise SshkeepError(f"daemon sent a non-JSON reply (HTTP {status})") from exc
        if status >= 400:
            err = payload.get("error", {}) if isinstance(payload, dict) else {}
            raise from_payload(err if isinstance(err, dict) else {}, status)
        try:
            out = model.model_validate(payload)
        except ValidationError as exc:
            raise SshkeepError(f"daemon reply does not match {model.__name__}: {exc}") from exc
        if isinstance(out, Reply) and isinstance(payload, dict):
            out.wire = payload
        return out

    async def call(
        self,
        op_id: str,
        model: type[R],
        body: BaseModel | None = None,
        query: BaseModel | None = None,
        **path: str,
    ) -> R:
        """Call operation `op_id` of the table; its method and path come from there.

        When the daemon goes away after a call reached it, a call that must not be sent twice
        (see `Operation.repeatable`) fails with `CallInterrupted` instead of `DaemonUnavailable`,
        which callers may retry."""
        op = OPERATIONS[op_id]
        params = None
        if query is not None:
            values = query.model_dump(exclude_none=True, exclude_defaults=True)
            params = {k: str(v) for k, v in values.items()}
        key = (op_id, tuple(path.items()))
        url = self._urls.get(key)
        if url is None:
            if len(self._urls) >= URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[key] = op.url(**path)
        try:
            return await self.request(op.method, url, model, body, params=params or None)
        except DaemonUnavailable as exc:
            if exc.context.get("sent") and not op.repeatable(body):
                raise CallInterrupted(
                    f"the sshkeep daemon stopped while {op_id} was in flight: it may or may not have "
                    f"been carried out ({exc.message})"
                ) from exc
            raise

    # --- typed calls: one per operation, named by its id (checked against the table by a test) --

    async def health(self) -> Health:
        return await self.call("health", Health)

    async def list_available_configs(self) -> ConfigList:
        return await self.call("list_available_configs", ConfigList)

    async def get_server_info(self, config_name: str) -> ServerInfo:
        return await self.call("get_server_info", ServerInfo, config_name=config_name)

    async def list_sessions(self) -> SessionList:
        return await self.call("list_sessions", SessionList)

    async def open_session(self, req: OpenSessionRequest) -> SessionInfo:
        return await self.call("open_session", SessionInfo, req)

    async def session_for_host(self, req: SessionForHostRequest) -> SessionInfo:
        return await self.call("session_for_host", SessionInfo, req)

    async def get_session(self, session_id: str) -> SessionInfo:
        return await self.call("get_session", SessionInfo, session_id=session_id)

    async def close_session(self, session_id: str) -> CloseResult:
        return await self.call("close_session", CloseResult, session_id=session_id)

    async def reconnect_session(self, session_id: str, req: ReconnectRequest) -> SessionInfo:
        return await self.call("reconnect_session", SessionInfo, req, session_id=session_id)

    async def cleanup_dead_sessions(self, req: CleanupRequest) -> CleanupResult:
        return await self.call("cleanup_dead_sessions", CleanupResult, req)

    async def send_command(self, session_id: str, req: SendCommandRequest) -> CommandResult:
        return await self.call("send_command", CommandResult, req, session_id=session_id)

    async def get_command(
        self, session_id: str, command_id: str, query: CommandQuery | None = None
    ) -> CommandResult:
        return await self.call(
            "get_command", CommandResult, query=query, session_id=session_id, command_id=command_id
        )

    async def send_keys(self, session_id: str, req: SendKeysRequest) -> SendKeysResult:
        return await self.call("send_keys", SendKeysResult, req, session_id=session_id)

    async def interrupt_command(self, session_id: str, req: InterruptRequest | None = None) -> CommandResult:
        return await self.call("interrupt_command", CommandResult, req, session_id=session_id)

    async def get_snapshot(self, session_id: str, query: SnapshotQuery | None = None) -> Snapshot:
        return await self.call("get_snapshot", Snapshot, query=query, session_id=session_id)

    async def wait_for(self, session_id: str, req: WaitForRequest) -> WaitForResult:
        return await self.call("wait_for", WaitForResult, req, session_id=session_id)

    async def search_output(self, session_id: str, req: SearchRequest) -> SearchResult:
        return await self.call("search_output", SearchResult, req, session_id=session_id)

    async def list_commands(self, session_id: str, query: CommandListQuery | None = None) -> CommandList:
        return await self.call("list_commands", CommandList, query=query, session_id=session_id)

    async def answer_secret(self, session_id: str, req: AnswerSecretRequest) -> CommandResult:
        return await self.call("answer_secret", CommandResult, req, session_id=session_id)

    async def answer_question(self, session_id: str, req: AnswerQuestionRequest) -> CommandResult:
        return await self.call("answer_question", CommandResult, req, session_id=session_id)

    async def take_control(self, session_id: str) -> ControlResult:
        return await self.call("take_control", ControlResult, session_id=session_id)

    async def release_control(self, session_id: str) -> ControlResult:
        return await self.call("release_control", ControlResult, session_id=session_id)

    async def read_remote_file(self, session_id: str, req: ReadFileRequest) -> ReadFileResult:
        return await self.call("read_remote_file", ReadFileResult, req, session_id=session_id)

    async def write_remote_file(self, session_id: str, req: WriteFileRequest) -> WriteFileResult:
        return await self.call("write_remote_file", WriteFileResult, req, session_id=session_id)

    async def exec_command(self, session_id: str, req: ExecRequest) -> ExecResult:
        return await self.call("exec_command", ExecResult, req, session_id=session_id)

    async def open_terminal(self, session_id: str, req: OpenTerminalRequest | None = None) -> TerminalInfo:
        return await self.call(
            "open_terminal", TerminalInfo, req or OpenTerminalRequest(), session_id=session_id
        )

    async def close_terminal(self, session_id: str, terminal: str) -> CloseTerminalResult:
        return await self.call(
            "close_terminal", CloseTerminalResult, session_id=session_id, terminal=terminal
        )

    async def start_job(self, session_id: str, req: StartJobRequest) -> JobResult:
        return await self.call("start_job", JobResult, req, session_id=session_id)

    async def list_jobs(self, query: JobsQuery | None = None) -> JobList:
        return await self.call("list_jobs", JobList, query=query)

    async def get_job(self, job_id: str, query: JobQuery | None = None) -> JobResult:
        return await self.call("get_job", JobResult, query=query, job_id=job_id)

    async def stop_job(self, job_id: str, req: StopJobRequest | None = None) -> JobResult:
        return await self.call("stop_job", JobResult, req or StopJobRequest(), job_id=job_id)

    async def check_command(self, session_id: str, req: CheckCommandRequest) -> CheckResult:
        return await self.call("check_command", CheckResult, req, session_id=session_id)

    async def list_approvals(self) -> ApprovalList:
        return await self.call("list_approvals", ApprovalList)

    async def approve(self, approval_id: str, req: ApproveRequest) -> Approval:
        return await self.call("approve", Approval, req, approval_id=approval_id)

    async def decline(self, approval_id: str, req: DeclineRequest) -> Approval:
        return await self.call("decline", Approval, req, approval_id=approval_id)
