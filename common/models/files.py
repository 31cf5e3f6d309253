"""Wire models of file transfer and side commands: read, write, exec."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field

from sshkeep.common.models.base import (
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

REMOTE_PATH_DESCRIPTION = (
    "Path on the remote host; relative paths and ~/ start in the login user's home directory "
    "(not the terminal's current directory)"
)


class ReadFileRequest(Request):
    remote_path: str = Field(min_length=1, max_length=MAX_PATH_CHARS, description=REMOTE_PATH_DESCRIPTION)
    encoding: Encoding = Field(
        default="text",
        description="text: the file as UTF-8 text (refused for binary files); base64: its exact bytes",
    )
    offset: int = Field(default=0, ge=0, description="First byte to return")
    limit: int | None = Field(
        default=None, ge=1, description="Most bytes to return (default: the rest of the file)"
    )


class ReadFileResult(Reply):
    session_id: str
    path: str = Field(description="The path as given")
    resolved_path: str = Field(description="Absolute path on the remote host, symlinks resolved")
    encoding: Encoding
    content: str = Field(description="The bytes read: text, or base64 of the bytes")
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
    content: str = Field(max_length=MAX_CONTENT_CHARS, description="Text, or base64 of the bytes")
    encoding: Encoding = Field(default="text", description="text (written as UTF-8) or base64")
    append: bool = Field(default=False, description="Append to the file (created if missing) in place")
    mode: str | None = Field(
        default=None,
        pattern=r"^0?[0-7]{3,4}$",
        description="Permission bits, octal (e.g. 0644); default: keep an existing file's, else the "
        "remote umask's",
    )
    make_parents: bool = Field(default=False, description="Create missing parent directories")
    expected_sha256: str | None = Field(
        default=None,
        pattern=r"^[0-9a-fA-F]{64}$",
        description="Refuse the write unless the file's current SHA-256 is this (from read_remote_file)",
    )


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
        description="Shell command line, run by the remote login shell with no terminal and empty stdin",
    )
    timeout: float = Field(
        default=10.0, gt=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for it to end (max 50)"
    )


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
