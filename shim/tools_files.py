"""MCP tools for files and side commands: read_remote_file, write_remote_file, exec_command.

They go over the session's side channel (its authenticated ssh connection), never through the
terminal: the screen stays as it was.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from sshkeep.common.models.files import (
    Encoding,
    ExecRequest,
    ExecResult,
    ReadFileRequest,
    ReadFileResult,
    WriteFileRequest,
    WriteFileResult,
)
from sshkeep.shim import inline
from sshkeep.shim.inline import INLINE_FILE_BYTES
from sshkeep.shim.tools_base import (
    FormattedError,
    Tools,
    host_param,
    optional_session,
    param,
    tool,
    validation_text,
)


def render_read(res: ReadFileResult) -> str:
    if res.local_path is not None and res.truncated:  # saved locally (see `inline`), its head inline
        head = f"{res.resolved_path}: {res.size} bytes, sha256 {res.sha256}"
        if res.mode:
            head += f", mode {res.mode}"
        head += f". {res.hint} Its first {res.length} bytes follow"
        head += " (base64):" if res.encoding == "base64" else ":"
        return f"{head}\n{res.content}" if res.content else head
    if res.local_path is not None:
        return f"copied {res.resolved_path} to {res.local_path}: {res.size} bytes, sha256 {res.sha256}"
    head = f"{res.resolved_path}: {res.length} of {res.size} bytes from offset {res.offset}"
    if res.sha256:
        head += f", sha256 {res.sha256}"
    if res.mode:
        head += f", mode {res.mode}"
    if res.truncated:
        head += f"; truncated, next_offset={res.next_offset}"
    if res.encoding == "base64" and res.length:
        head += " (base64)"
    if res.hint and res.hint.startswith(inline.PAGE_LIMIT_NOTE):
        head += f". {res.hint}"
    return f"{head}\n{res.content}" if res.content else head


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
        remote_path: Annotated[str, param("read_remote_file", "remote_path")],
        session_id: Annotated[str | None, optional_session()] = None,
        host: Annotated[str | None, host_param()] = None,
        encoding: Annotated[Encoding, param("read_remote_file", "encoding")] = "text",
        offset: Annotated[int, param("read_remote_file", "offset")] = 0,
        limit: Annotated[int | None, param("read_remote_file", "limit")] = None,
        local_path: Annotated[str | None, param("read_remote_file", "local_path")] = None,
        metadata_only: Annotated[bool, param("read_remote_file", "metadata_only")] = False,
    ) -> Annotated[CallToolResult, ReadFileResult]:
        """Read a remote file exactly (not cat): content, size, sha256; over 256 KiB: a local copy's
        path + head."""
        if local_path is not None or metadata_only or (limit is not None and limit <= INLINE_FILE_BYTES):
            body = ReadFileRequest(
                remote_path=remote_path,
                encoding=encoding,
                offset=offset,
                limit=limit,
                local_path=local_path,
                metadata_only=metadata_only,
            )
            res = await tools.on_host(
                session_id, host, lambda sid: tools.call(lambda: client.read_remote_file(sid, body))
            )
            return tools.result(res, render_read(res))
        page = ReadFileRequest(
            remote_path=remote_path, encoding=encoding, offset=offset, limit=INLINE_FILE_BYTES
        )

        async def read(sid: str) -> ReadFileResult:
            res = await tools.call(lambda: client.read_remote_file(sid, page))
            whole = offset == 0 and (limit is None or limit >= res.size)
            if not res.truncated or not whole:
                return inline.capped_range(res)
            # Too large to send inline: the whole file goes to a local file (streamed), its head here.
            name = inline.spill_name(sid, res.resolved_path)
            copy = ReadFileRequest(remote_path=remote_path, encoding=encoding, local_path=name)
            try:
                saved = await tools.call(lambda: client.read_remote_file(sid, copy))
            except FormattedError as err:  # e.g. no usable local root: page inline instead
                return inline.capped_range(res, failed=str(err).split("\n")[0])
            return inline.spilled(res, saved)

        res = await tools.on_host(session_id, host, read)
        return tools.result(res, render_read(res))

    @tool(server, "write_remote_file")
    async def write_remote_file(
        remote_path: Annotated[str, param("write_remote_file", "remote_path")],
        ctx: Context,
        session_id: Annotated[str | None, optional_session()] = None,
        host: Annotated[str | None, host_param()] = None,
        content: Annotated[str | None, param("write_remote_file", "content")] = None,
        local_path: Annotated[str | None, param("write_remote_file", "local_path")] = None,
        encoding: Annotated[Encoding, param("write_remote_file", "encoding")] = "text",
        append: Annotated[bool, param("write_remote_file", "append")] = False,
        mode: Annotated[str | None, param("write_remote_file", "mode")] = None,
        make_parents: Annotated[bool, param("write_remote_file", "make_parents")] = False,
        expected_sha256: Annotated[str | None, param("write_remote_file", "expected_sha256")] = None,
    ) -> Annotated[CallToolResult, WriteFileResult] | InputRequiredResult:
        """Write a remote file atomically, keeping its mode (instead of sed or heredocs)."""
        try:
            body = WriteFileRequest(
                remote_path=remote_path,
                content=content,
                local_path=local_path,
                encoding=encoding,
                append=append,
                mode=mode,
                make_parents=make_parents,
                expected_sha256=expected_sha256,
            )
        except ValidationError as exc:
            raise FormattedError(validation_text("write_remote_file", exc, {})) from exc
        res = await tools.on_host(
            session_id, host, lambda sid: tools.guarded(ctx, lambda: client.write_remote_file(sid, body))
        )
        if isinstance(res, InputRequiredResult):
            return res
        return tools.result(res, render_write(res))

    @tool(server, "exec_command")
    async def exec_command(
        command: Annotated[str, param("exec_command", "command")],
        ctx: Context,
        session_id: Annotated[str | None, optional_session()] = None,
        host: Annotated[str | None, host_param()] = None,
        timeout: Annotated[float, param("exec_command", "timeout")] = 10.0,
    ) -> Annotated[CallToolResult, ExecResult] | InputRequiredResult:
        """Run a command beside the terminal (no tty, home dir): separate stdout, stderr, exit code."""
        body = ExecRequest(command=command, timeout=timeout)
        res = await tools.on_host(
            session_id, host, lambda sid: tools.guarded(ctx, lambda: client.exec_command(sid, body))
        )
        if isinstance(res, InputRequiredResult):
            return res
        return tools.result(res, render_exec(res))
