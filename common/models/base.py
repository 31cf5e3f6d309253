"""The wire format's base: request/reply base classes, id patterns, size limits and the error body.

The daemon validates requests with these, the API client parses replies with them, and the MCP
shim derives its tool schemas from them. Requests forbid unknown fields and bound their sizes.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

SESSION_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
COMMAND_ID_PATTERN = r"^c[0-9]{1,9}$"
# A client's idempotency key for one send_command (the MCP shim sends a fresh one per tool call).
REQUEST_ID_PATTERN = r"^[A-Za-z0-9_.:-]{8,64}$"
# Terminal names: lowercase, short, usable in tmux targets and file names; `main` is the first one.
TERMINAL_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
MAIN_TERMINAL = "main"
JOB_ID_PATTERN = r"^j-[0-9a-f]{6}$"
MAX_COMMAND_CHARS = 256 * 1024
MAX_WAIT_SECONDS = 50.0

CommandStatus = Literal[
    "completed",
    "running",
    "waiting_input",
    "interrupted",
    "timed_out",
    "disconnected",
    "failed",
    "approval_required",
]
SessionState = Literal["connecting", "waiting_input", "ready", "busy", "human", "disconnected", "failed"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_COMMAND_CHARS)


class Reply(BaseModel):
    """A reply. `wire` holds the JSON it was validated from when the API client made it (never
    serialised): the shim passes that on instead of dumping the model again. Assigning a field
    drops it (the JSON no longer says what the model does); a nested value must not be changed
    in place while it is set."""

    model_config = ConfigDict(extra="ignore")
    _wire: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def wire(self) -> dict[str, Any] | None:
        return self._wire

    @wire.setter
    def wire(self, payload: dict[str, Any]) -> None:
        self._wire = payload

    def __setattr__(self, name: str, value: Any) -> None:
        if name in type(self).model_fields and self._wire is not None:
            self._wire = None
        super().__setattr__(name, value)


# --- errors ---------------------------------------------------------------------------------------


class DiskNotice(Reply):
    """sshkeep could not write all of its files: the disk holding them is (or was just) full."""

    message: str = Field(description="What could not be written and what happens to it")
    free_bytes: int | None = Field(default=None, description="Space left where sshkeep keeps its files")
    dropping: list[str] = Field(
        default_factory=list, description="Terminals whose output is being dropped (counted) right now"
    )
    unrecorded_bytes: int = Field(default=0, description="Output bytes the full disk kept out of the logs")
    waiting: list[str] = Field(
        default_factory=list, description="What is held in memory until space returns (state, audit)"
    )


class ErrorDetail(Reply):
    code: str
    message: str
    hint: str = ""
    approval_id: str | None = Field(default=None, description="Set with code approval_required")


class ErrorReply(Reply):
    error: ErrorDetail


# --- path parameters ------------------------------------------------------------------------------
# Every `{…}` of an API path is a field of one of these, so its pattern and description are written
# once and show in the OpenAPI document and the MCP input schemas alike.

DISK_FIELD = Field(default=None, description="Set while sshkeep's disk is full: what could not be written")
SESSION_ID_FIELD = Field(pattern=SESSION_ID_PATTERN, max_length=63, description="Session id")


LOCAL_PATH_DESCRIPTION = "(under local_roots)"
LOCAL_OUTPUT_FIELD = Field(
    default=None,
    min_length=1,
    max_length=4096,
    description="Save all output to this local file instead " + LOCAL_PATH_DESCRIPTION,
)


TERMINAL_FIELD = Field(
    default=None,
    pattern=TERMINAL_PATTERN,
    max_length=32,
    description="Terminal name (default: main)",
)


class SessionPath(Request):
    session_id: str = SESSION_ID_FIELD


class CommandPath(Request):
    session_id: str = SESSION_ID_FIELD
    command_id: str = Field(
        pattern="^(" + COMMAND_ID_PATTERN.strip("^$") + "|last)$",
        max_length=10,
        description="Command id, or last",
    )


class TerminalPath(Request):
    session_id: str = SESSION_ID_FIELD
    terminal: str = Field(pattern=TERMINAL_PATTERN, max_length=32, description="Terminal name")


class JobPath(Request):
    job_id: str = Field(
        pattern=JOB_ID_PATTERN, max_length=8, description="Job id from start_job or list_jobs"
    )


class ConfigPath(Request):
    config_name: str = Field(min_length=1, max_length=255, description="Name from list_available_configs")
