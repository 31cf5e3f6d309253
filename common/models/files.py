"""Wire models of file transfer and side commands: read, write, exec."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from sshkeep.common.models.base import (
    LOCAL_PATH_DESCRIPTION,
    MAX_COMMAND_CHARS,
    MAX_WAIT_SECONDS,
    Reply,
    Request,
)

MAX_PATH_CHARS = 4096
# The API body limit (daemon/app.py MAX_BODY) bounds a write; the configured transfer limit
# (settings.max_transfer_mb, default 64 MB of file bytes) is checked by the daemon.
MAX_CONTENT_CHARS = 96 * 1024 * 1024

Encoding = Literal["text", "base64"]

REMOTE_PATH_DESCRIPTION = "Remote path (relative: from the login home)"


class ReadFileRequest(Request):
    remote_path: str = Field(min_length=1, max_length=MAX_PATH_CHARS, description=REMOTE_PATH_DESCRIPTION)
    encoding: Encoding = Field(
        default="text",
        description="text (UTF-8) or base64 (binary)",
    )
    offset: int = Field(default=0, ge=0, le=2**40, description="First byte")
    limit: int | None = Field(default=None, ge=1, le=2**40, description="Max bytes")
    local_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="Copy the file here instead " + LOCAL_PATH_DESCRIPTION,
    )
    metadata_only: bool = Field(default=False, description="Only size, sha256, mode, mtime")


class ReadFileResult(Reply):
    session_id: str
    path: str = Field(description="The path as given")
    resolved_path: str = Field(description="Absolute path on the remote host, symlinks resolved")
    encoding: Encoding
    content: str = Field(default="", description="The bytes read: text, or base64 of the bytes")
    local_path: str | None = Field(
        default=None,
        description="Where the whole file was copied to: as asked, or (MCP) a file over the inline limit",
    )
    offset: int = Field(description="Byte offset of the first byte in `content`")
    length: int = Field(description="Number of bytes in `content`")
    size: int = Field(description="Size of the whole file in bytes")
    sha256: str | None = Field(
        default=None,
        description="SHA-256 of the whole file (null when only a part was read); pass it as "
        "expected_sha256 to write_remote_file to refuse overwriting changes made since",
    )
    truncated: bool = Field(description="True when the file goes on past this range")
    next_offset: int | None = Field(default=None, description="Offset of the next page when truncated")
    mode: str | None = Field(default=None, description="Permission bits, octal (e.g. 0644)")
    mtime: int | None = Field(default=None, description="Modification time (Unix seconds)")
    hint: str | None = None


class WriteFileRequest(Request):
    # Content may be far larger than the command limit of `Request`.
    model_config = ConfigDict(extra="forbid", str_max_length=MAX_CONTENT_CHARS)

    remote_path: str = Field(min_length=1, max_length=MAX_PATH_CHARS, description=REMOTE_PATH_DESCRIPTION)
    content: str | None = Field(
        default=None, max_length=MAX_CONTENT_CHARS, description="Text, or base64 of the bytes"
    )
    local_path: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PATH_CHARS,
        description="Local file to upload, instead of content " + LOCAL_PATH_DESCRIPTION,
    )
    encoding: Encoding = Field(default="text", description="text or base64")
    append: bool = Field(default=False, description="Append in place")
    mode: str | None = Field(
        default=None,
        pattern=r"^0?[0-7]{3,4}$",
        description="Octal mode, e.g. 0644 (default: keep the file's)",
    )
    make_parents: bool = Field(default=False, description="Create missing directories")
    expected_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Refuse unless the file's sha256 is this",
    )

    @model_validator(mode="after")
    def _one_source(self) -> WriteFileRequest:
        if (self.content is None) == (self.local_path is None):
            raise ValueError("give exactly one of content and local_path")
        return self


class WriteFileResult(Reply):
    session_id: str
    path: str = Field(description="The path as given")
    resolved_path: str = Field(description="Absolute path written, symlinks resolved")
    bytes_written: int
    size: int = Field(description="Size of the file after the write")
    sha256: str | None = Field(
        default=None, description="SHA-256 of the file after the write (null after an append)"
    )
    mode: str | None = Field(default=None, description="Permission bits after the write, octal")
    created: bool = Field(description="The file did not exist before")
    appended: bool = False
    atomic: bool = Field(
        description="Replaced through a temporary file and a rename, so no reader saw half a file"
    )
    hint: str | None = None


class ExecRequest(Request):
    command: str = Field(
        min_length=1,
        max_length=MAX_COMMAND_CHARS,
        description="Command line for the remote login shell",
    )
    timeout: float = Field(default=10.0, gt=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for the end")


class ExecResult(Reply):
    session_id: str
    command: str
    exit_code: int | None = Field(default=None, description="Exit status; null when it timed out")
    stdout: str = Field(description="Standard output (UTF-8; undecodable bytes replaced)")
    stderr: str = Field(description="Standard error (UTF-8; undecodable bytes replaced)")
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    duration_seconds: float
    hint: str | None = None
