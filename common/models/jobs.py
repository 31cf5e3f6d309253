"""Wire models for terminals and jobs: open/close a terminal, start, list, page and stop a job."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sshkeep.common.models.base import (
    MAX_WAIT_SECONDS,
    SESSION_ID_PATTERN,
    TERMINAL_PATTERN,
    CommandStatus,
    Reply,
    Request,
    SessionState,
)

MAX_JOB_COMMAND_CHARS = 64 * 1024

# running: the command runs; exited: it ended by itself (exit_code); stopped: stop_job ended it;
# disconnected: ssh dropped and took a non-durable job with it; detached: a durable job whose
# terminal lost its ssh (it still runs on the host; reconnect_session re-attaches it).
JobStatus = Literal["starting", "running", "exited", "stopped", "disconnected", "detached", "failed"]
StopSignal = Literal["SIGINT", "SIGTERM", "SIGKILL"]


# --- terminals ------------------------------------------------------------------------------------


class OpenTerminalRequest(Request):
    name: str | None = Field(
        default=None,
        pattern=TERMINAL_PATTERN,
        max_length=32,
        description="Name for the new terminal (default: t1, t2, ...); `main` is the session's first",
    )
    timeout: float = Field(
        default=15.0, gt=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for its shell to be ready"
    )


class TerminalInfo(Reply):
    session_id: str
    terminal: str
    state: SessionState
    shell: str | None = None
    created_at: float
    running_command_id: str | None = None
    running_command: str | None = Field(default=None, description="The start of what runs there now")
    job_id: str | None = Field(default=None, description="The job this terminal was opened for")
    attach: str = Field(description="Command a person runs to watch this terminal")
    hint: str | None = None


class CloseTerminalResult(Reply):
    session_id: str
    terminal: str
    closed: bool


# --- jobs -----------------------------------------------------------------------------------------


class ReadySpec(Request):
    """When a job counts as ready: a line of its output matches `pattern`, or `port` accepts."""

    pattern: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="Python regex to wait for in the job's output",
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="TCP port on the remote host (localhost) to wait for"
    )
    timeout: float = Field(
        default=30.0, gt=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for readiness (max 50)"
    )

    @model_validator(mode="after")
    def _one(self) -> ReadySpec:
        if (self.pattern is None) == (self.port is None):
            raise ValueError("give exactly one of pattern or port")
        return self


class StartJobRequest(Request):
    command: str = Field(
        min_length=1, max_length=MAX_JOB_COMMAND_CHARS, description="Shell command line to run as the job"
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="A label for list_jobs (default: from the command)",
    )
    ready: ReadySpec | None = Field(
        default=None,
        description="Wait until the job is ready (regex in its output, or a port); else return at once",
    )
    durable: bool = Field(
        default=False,
        description="Run detached on the remote host (setsid, output in ~/.sshkeep-jobs/<id>/), so the job "
        "survives the SSH connection dropping; reconnect_session re-attaches it",
    )
    cwd: str | None = Field(
        default=None, min_length=1, max_length=4096, description="Remote directory to run in (default: home)"
    )


class JobsQuery(Request):
    session_id: str | None = Field(
        default=None, pattern=SESSION_ID_PATTERN, max_length=63, description="Only this session's jobs"
    )


class JobQuery(Request):
    offset: int = Field(default=0, ge=0, le=10**9, description="First output line to return")
    limit: int | None = Field(default=None, ge=1, le=100_000, description="Lines to return (default: a page)")
    wait: float = Field(
        default=0.0, ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the job to end (max 50)"
    )


class StopJobRequest(Request):
    grace: float = Field(
        default=3.0,
        gt=0,
        le=15,
        description="Seconds to wait after each signal before the next, stronger one",
    )


class JobInfo(Reply):
    job_id: str
    session_id: str
    terminal: str = Field(description="The job's own terminal (get_command/send_keys take it as `terminal`)")
    name: str
    command: str
    durable: bool
    status: JobStatus
    exit_code: int | None = None
    started_at: float
    ended_at: float | None = None
    command_id: str | None = Field(default=None, description="The command record of the job in its terminal")
    last_line: str | None = Field(default=None, description="The last non-empty line of output so far")
    remote_dir: str | None = Field(
        default=None, description="Where a durable job keeps its files on the host"
    )
    stopped_by: StopSignal | None = None
    hint: str | None = None


class JobList(Reply):
    jobs: list[JobInfo]


class JobResult(JobInfo):
    """A job with (a page of) its output."""

    ready: bool | None = Field(default=None, description="With `ready`: whether the job became ready")
    ready_detail: str | None = Field(default=None, description="What made it ready, or why it did not")
    command_status: CommandStatus | None = None
    output: str = ""
    offset: int = 0
    next_offset: int | None = None
    has_more: bool = False
    total_lines: int = 0
    truncated: str | None = None
    stop_steps: list[str] = Field(default_factory=list, description="What stop_job tried, in order")
