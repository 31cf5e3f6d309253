"""Wire models for sessions and commands: open, list, send, page, keys, wait, snapshot."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_serializer, field_validator, model_validator

from sshkeep.common.models.base import (
    COMMAND_ID_PATTERN,
    DISK_FIELD,
    LOCAL_OUTPUT_FIELD,
    MAIN_TERMINAL,
    MAX_COMMAND_CHARS,
    MAX_WAIT_SECONDS,
    REQUEST_ID_PATTERN,
    TERMINAL_FIELD,
    CommandStatus,
    DiskNotice,
    Reply,
    Request,
    SessionState,
)
from sshkeep.common.models.jobs import TerminalInfo
from sshkeep.common.models.policy import ApprovalNeeded

# --- health ---------------------------------------------------------------------------------------


class Health(Reply):
    status: Literal["ok"] = "ok"
    version: str
    pid: int
    socket: str
    sessions: int
    attach: str = Field(description="Command a person runs to watch the sessions in tmux")
    uptime_seconds: float
    disk: DiskNotice | None = DISK_FIELD


# --- sessions -------------------------------------------------------------------------------------


class OpenSessionRequest(Request):
    host: str = Field(
        min_length=1,
        max_length=255,
        description="Name from list_available_configs, or an ssh destination [user@]host",
    )
    username: str | None = Field(
        default=None, min_length=1, max_length=64, description="Login user (wins over the config's)"
    )
    port: int | None = Field(default=None, ge=1, le=65535, description="TCP port (wins over the config's)")
    timeout: float = Field(default=30.0, gt=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for login")


class Question(Reply):
    kind: str = Field(
        description="password, passphrase, host_key, confirm, otp, secret, continuation, fullscreen, prompt"
    )
    text: str
    secret: str | None = Field(
        default=None, description="The configured secret that answers it (answer_secret's name), if any"
    )


class CommandSummary(Reply):
    """One prompt cycle of a session, whoever typed it (output: get_command)."""

    command_id: str
    command: str
    source: Literal["agent", "keys", "person"] = Field(
        description="agent: send_command/answer_secret; keys: the agent's send_keys; person: typed in tmux"
    )
    status: CommandStatus
    exit_code: int | None = None
    started_at: float
    ended_at: float | None = None


class SessionInfo(Reply):
    session_id: str
    target: str = Field(description="What the session connects to (config name or destination)")
    connection: str | None = Field(default=None, description="config.yml entry name, if any")
    login: str | None = Field(default=None, description="user@host[:port] ssh logs in as")
    state: SessionState
    shell: str | None = None
    integrated: bool = Field(default=False, description="Exact completion markers installed")
    created_at: float
    tmux_session: str
    attach: str = Field(description="Command a person runs to watch this session")
    running_command_id: str | None = None
    question: Question | None = None
    message: str | None = Field(default=None, description="ssh's last words for a dead session")
    exit_status: int | None = Field(
        default=None,
        description="ssh's exit status once it has exited (128+N: killed by signal N)",
    )
    person_commands: list[CommandSummary] | None = Field(
        default=None, description="Commands a person ran while holding the terminal (state human)"
    )
    hint: str | None = None
    terminals: list[TerminalInfo] = Field(
        default_factory=list,
        description="The session's other terminals (open_terminal, jobs) and what runs there",
    )
    disk: DiskNotice | None = DISK_FIELD


class SessionList(Reply):
    sessions: list[SessionInfo]


class CloseResult(Reply):
    session_id: str
    closed: bool


# --- commands -------------------------------------------------------------------------------------


class SendCommandRequest(Request):
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS, description="Shell command line(s)")
    timeout: float = Field(default=10.0, ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the end")
    terminal: str | None = TERMINAL_FIELD
    local_path: str | None = LOCAL_OUTPUT_FIELD
    request_id: str | None = Field(
        default=None,
        pattern=REQUEST_ID_PATTERN,
        description="Idempotency key: sending the same command again with the same key (a retry after "
        "a lost reply or a daemon restart) types nothing and returns that command's result",
    )


class SavedOutput(Reply):
    """Where a command's output went instead of the reply."""

    local_path: str
    lines: int
    size: int
    sha256: str


class CommandResult(Reply):
    session_id: str
    terminal: str = MAIN_TERMINAL
    command_id: str
    command: str = ""
    status: CommandStatus
    exit_code: int | None = None
    output: str = ""
    offset: int = Field(default=0, description="First line of `output`")
    next_offset: int | None = Field(default=None, description="Line to pass as offset for the next page")
    has_more: bool = False
    total_lines: int = 0
    truncated: str | None = Field(default=None, description="What was cut from `output`, and how to page")
    dropped_bytes: int = Field(
        default=0,
        description="Output bytes not returned: taken by the per-session log size cap, or kept out of "
        "the log by a full disk (counted exactly)",
    )
    uncounted_gaps: int = Field(
        default=0,
        description="Places where output was lost without a count (the log writer was found detached)",
    )
    disk: DiskNotice | None = DISK_FIELD
    question: Question | None = None
    screen: str | None = Field(
        default=None, description="A full-screen program's rendered screen (instead of its raw output)"
    )
    saved: SavedOutput | None = Field(default=None, description="Output written to a local file instead")
    approval: ApprovalNeeded | None = Field(
        default=None, description="With status approval_required: what to approve (nothing was typed)"
    )
    hint: str | None = None
    note: str | None = Field(
        default=None, description="Something worth knowing, e.g. background jobs the command left running"
    )
    started_at: float | None = None
    ended_at: float | None = None
    source: Literal["agent", "keys", "person"] = "agent"
    secret_echoed: bool = Field(
        default=False, description="The remote side echoed a typed secret; it is redacted from all output"
    )
    person_commands: list[CommandSummary] | None = Field(
        default=None, description="Commands a person ran while holding the terminal, listed once"
    )


class SendKeysRequest(Request):
    keys: list[str] = Field(
        min_length=1,
        max_length=1000,
        description="tmux key names (Enter, C-c, Up, Escape) or literal text, in order",
    )
    wait: float = Field(
        default=3.0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the result",
    )
    terminal: str | None = TERMINAL_FIELD


class SendKeysResult(Reply):
    session_id: str
    terminal: str = MAIN_TERMINAL
    sent: int
    running_command_id: str | None = None
    result: CommandResult | None = Field(
        default=None, description="The command the keys went to, after the wait (null: none ran)"
    )
    hint: str | None = None
    person_commands: list[CommandSummary] | None = Field(
        default=None, description="Commands a person ran while holding the terminal, listed once"
    )


class WaitForRequest(Request):
    pattern: str = Field(min_length=1, max_length=2000, description="Python regex")
    timeout: float = Field(default=10.0, ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait")
    since: int | None = Field(
        default=None,
        ge=0,
        description="Search output from this log position (a previous reply's `searched_to`)",
    )
    terminal: str | None = TERMINAL_FIELD


class WaitForResult(Reply):
    session_id: str
    terminal: str = MAIN_TERMINAL
    matched: bool
    pattern: str
    line: str | None = Field(default=None, description="The line that matched")
    context: str = Field(default="", description="A few lines before and after the match")
    running_command_id: str | None = None
    command_status: CommandStatus | None = None
    searched_to: int = Field(default=0, description="Log position searched up to; pass as `since` to go on")
    hint: str | None = None


class CommandQuery(Request):
    """Query of `GET …/commands/{command_id}`: which page of the output, and how long to wait."""

    offset: int = Field(default=0, ge=0, le=10**9, description="First output line")
    limit: int | None = Field(default=None, ge=1, le=100_000, description="Lines (default 1000)")
    wait: float = Field(default=0.0, ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the end")
    terminal: str | None = TERMINAL_FIELD
    local_path: str | None = LOCAL_OUTPUT_FIELD


class SnapshotQuery(Request):
    lines: int = Field(default=0, ge=0, le=50_000, description="Scrollback lines to add")
    terminal: str | None = TERMINAL_FIELD


class InterruptRequest(Request):
    terminal: str | None = TERMINAL_FIELD


class SessionForHostRequest(Request):
    host: str = Field(
        min_length=1,
        max_length=255,
        description="Host name, instead of session_id",
    )
    timeout: float = Field(default=30.0, gt=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for login")


class SearchRequest(Request):
    pattern: str = Field(min_length=1, max_length=2000, description="Python regex")
    command_id: str | None = Field(
        default=None,
        pattern="^(" + COMMAND_ID_PATTERN.strip("^$") + "|last)$",
        max_length=10,
        description="Command id or last (default: all commands)",
    )
    context: int = Field(default=2, ge=0, le=20, description="Lines around each match")
    max_matches: int = Field(default=20, ge=1, le=200, description="Matches shown (all are counted)")
    ignore_case: bool = Field(default=False, description="Case-insensitive")


class SearchMatch(Reply):
    command_id: str
    line: int = Field(description="Line number in the command's output: get_command offset")
    text: str
    before: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)


class SearchResult(Reply):
    session_id: str
    pattern: str
    total_matches: int = Field(description="Every match counted, also past max_matches")
    matches: list[SearchMatch]
    lines_searched: int
    complete: bool = Field(description="False when the time budget ran out before the end")
    hint: str | None = None


class ReconnectRequest(Request):
    timeout: float = Field(default=30.0, gt=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for login")


class Snapshot(Reply):
    session_id: str
    terminal: str = MAIN_TERMINAL
    screen: str
    lines: int
    cursor_x: int
    cursor_y: int
    alternate_screen: bool
    state: SessionState
    person_commands: list[CommandSummary] | None = Field(
        default=None, description="Commands a person ran while holding the terminal, listed once"
    )


# --- secrets, people and the list of commands -------------------------------------------------------


class AnswerSecretRequest(Request):
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="The configured secret to type (default: the one the pending question names)",
    )
    sudo: bool = Field(
        default=False,
        description="Validate sudo first: sshkeep runs `sudo -v` in the idle terminal and answers its "
        "password prompt, so the next `sudo …` command runs without asking",
    )
    timeout: float = Field(
        default=10.0, ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the command (max 50)"
    )


class AnswerQuestionRequest(Request):
    """A person's answer (`sshkeep answer`): typed text, or the name of a configured secret."""

    answer: SecretStr | None = Field(default=None, description="The answer to type (never logged)")
    secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="A configured secret to type instead",
    )
    timeout: float = Field(default=10.0, ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait (max 50)")

    @field_validator("answer")
    @classmethod
    def _one_line(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            text = value.get_secret_value()
            if len(text) > 4096:
                raise ValueError("longer than 4096 characters")
            if any(c in "\r\n\x00" for c in text):
                raise ValueError("must be one line (no line break or NUL)")
        return value

    @field_serializer("answer", when_used="json")
    def _on_the_wire(self, value: SecretStr | None) -> str | None:
        # The client must send the answer itself; repr() and str() still mask it.
        return value.get_secret_value() if value is not None else None

    @model_validator(mode="after")
    def _exactly_one(self) -> AnswerQuestionRequest:
        if (self.answer is None) == (self.secret is None):
            raise ValueError("give exactly one of `answer` and `secret`")
        return self


class CommandListQuery(Request):
    since: str | None = Field(
        default=None,
        pattern=COMMAND_ID_PATTERN,
        max_length=10,
        description="Only commands after this command id",
    )
    limit: int = Field(default=100, ge=1, le=10_000, description="At most this many (the newest)")


class CommandList(Reply):
    session_id: str
    commands: list[CommandSummary]
    hint: str | None = None


class ControlResult(Reply):
    """A take-over or its end: the session's state, and what the person ran meanwhile."""

    session_id: str
    state: SessionState
    taken: bool = Field(description="A person holds the terminal now")
    changed: bool = Field(default=True, description="This call took or released it (false: no change)")
    person_commands: list[CommandSummary] = Field(default_factory=list)
    hint: str | None = None
