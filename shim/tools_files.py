"""MCP tools for files and side commands: read_remote_file, write_remote_file, exec_command.

They go over the session's side channel (its authenticated ssh connection), never through the
terminal: the screen stays as it was.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, InputRequiredResult

from sshkeep.common.models.files import (
    Encoding,
    ExecRequest,
    ExecResult,
    ReadFileRequest,
    ReadFileResult,
    WriteFileRequest,
    WriteFileResult,
)
from sshkeep.shim.tools_base import Tools, param, tool


def render_read(res: ReadFileResult) -> str:
    head = f"{res.resolved_path}: {res.length} of {res.size} bytes from offset {res.offset}"
    if res.sha256:
        head += f", sha256 {res.sha256}"
    if res.truncated:
        head += f"; truncated, next_offset={res.next_offset}"
    if res.encoding == "base64":
        head += " (base64)"
    return f"{head}\n{res.content}"


def render_write(res: WriteFileResult) -> str:
    how = "appended" if res.appended else ("created" if res.created else "replaced")
    text = f"{how} {res.resolved_path}: {res.bytes_written} bytes written, size {res.size}, mode {res.mode}"
    if res.sha256:
        text += f", sha256 {res.sha256}"
    if res.hint:
        text += f"\nhint: {res.hint}"
    return text


def render_exec(res: ExecResult) -> str:
    status = "timed out" if res.timed_out else f"exit {res.exit_code}"
    parts = [f"{status} after {res.duration_seconds:g}s"]
    if res.stdout:
        parts.append(f"--- stdout ---\n{res.stdout}")
    if res.stderr:
        parts.append(f"--- stderr ---\n{res.stderr}")
    if res.hint:
        parts.append(f"hint: {res.hint}")
    return "\n".join(parts)


def register(server: MCPServer[Any], tools: Tools) -> None:
    """Add this group's tools to the server."""
    client = tools.client

    @tool(server, "read_remote_file")
    async def read_remote_file(
        session_id: Annotated[str, param("read_remote_file", "session_id")],
        remote_path: Annotated[str, param("read_remote_file", "remote_path")],
        encoding: Annotated[Encoding, param("read_remote_file", "encoding")] = "text",
        offset: Annotated[int, param("read_remote_file", "offset")] = 0,
        limit: Annotated[int | None, param("read_remote_file", "limit")] = None,
    ) -> Annotated[CallToolResult, ReadFileResult]:
        """Read a remote file exactly, over the session's connection (not typed into the terminal).
        Returns content, size, sha256 and, for large files, a byte range to page with offset/limit."""
        body = ReadFileRequest(remote_path=remote_path, encoding=encoding, offset=offset, limit=limit)
        res = await tools.call(lambda: client.read_remote_file(session_id, body))
        return tools.result(res, render_read(res))

    @tool(server, "write_remote_file")
    async def write_remote_file(
        session_id: Annotated[str, param("write_remote_file", "session_id")],
        remote_path: Annotated[str, param("write_remote_file", "remote_path")],
        content: Annotated[str, param("write_remote_file", "content")],
        ctx: Context,
        encoding: Annotated[Encoding, param("write_remote_file", "encoding")] = "text",
        append: Annotated[bool, param("write_remote_file", "append")] = False,
        mode: Annotated[str | None, param("write_remote_file", "mode")] = None,
        make_parents: Annotated[bool, param("write_remote_file", "make_parents")] = False,
        expected_sha256: Annotated[str | None, param("write_remote_file", "expected_sha256")] = None,
    ) -> Annotated[CallToolResult, WriteFileResult] | InputRequiredResult:
        """Write a remote file exactly and atomically (temp file + rename; readers never see half a
        file), keeping an existing file's mode. Over the session's connection, not the terminal."""
        body = WriteFileRequest(
            remote_path=remote_path,
            content=content,
            encoding=encoding,
            append=append,
            mode=mode,
            make_parents=make_parents,
            expected_sha256=expected_sha256,
        )
        res = await tools.guarded(ctx, lambda: client.write_remote_file(session_id, body))
        if isinstance(res, InputRequiredResult):
            return res
        return tools.result(res, render_write(res))

    @tool(server, "exec_command")
    async def exec_command(
        session_id: Annotated[str, param("exec_command", "session_id")],
        command: Annotated[str, param("exec_command", "command")],
        ctx: Context,
        timeout: Annotated[float, param("exec_command", "timeout")] = 10.0,
    ) -> Annotated[CallToolResult, ExecResult] | InputRequiredResult:
        """Run a non-interactive command beside the terminal (same connection, no tty, empty stdin):
        separate stdout, stderr and exit code; the terminal and its shell state are untouched."""
        body = ExecRequest(command=command, timeout=timeout)
        res = await tools.guarded(ctx, lambda: client.exec_command(session_id, body))
        if isinstance(res, InputRequiredResult):
            return res
        return tools.result(res, render_exec(res))
