"""Reading and writing remote files, and side commands, over a session's side channel.

Nothing here types into the terminal: files move over the session's SFTP side channel
(daemon/sidechannel.py) as exact bytes, and side commands run on their own exec channel of the
same authenticated connection. Every remote failure becomes an SshkeepError naming the path.

- Reads return the bytes as text (UTF-8; binary is refused with a hint to use base64) or base64,
  page by byte offset/limit, and carry the file's size and, for a whole read, its SHA-256.
- Writes replace atomically: a temporary file in the same directory, fsync, then rename over the
  target, so a reader sees the old file or the new one, never half of it. An existing file keeps
  its permission bits (and, when allowed, its owner) unless `mode` says otherwise; a symlink is
  followed, so its target is replaced, not the link. `append` writes in place (O_APPEND).
- Transfers are bounded by `settings: {max_transfer_mb: N}` in config.yml (default 64).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import posixpath
import secrets
import stat
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from sshkeep.common.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, RemoteError, SshkeepError
from sshkeep.common.models.files import (
    ExecRequest,
    ExecResult,
    ReadFileRequest,
    ReadFileResult,
    WriteFileRequest,
    WriteFileResult,
)
from sshkeep.daemon.files.sftp import (
    FX_EOF,
    FX_FAILURE,
    FX_NO_SUCH_FILE,
    FX_OP_UNSUPPORTED,
    FX_PERMISSION_DENIED,
    FXF_APPEND,
    FXF_CREAT,
    FXF_EXCL,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    Attrs,
    SftpClient,
    SftpError,
)
from sshkeep.daemon.files.sidechannel import channels, run_side_command

if TYPE_CHECKING:
    from sshkeep.daemon.sessions.manager import SessionManager

log = structlog.get_logger(__name__)

T = TypeVar("T")

DEFAULT_MAX_TRANSFER_MB = 64.0
EXEC_OUTPUT_CAP = 1024 * 1024
CPU_IN_THREAD = 1024 * 1024  # hash/encode bigger payloads off the event loop
BASE64_HINT = "Read it with encoding='base64' to get its exact bytes."


def max_transfer_bytes(manager: SessionManager) -> int:
    """The per-transfer limit in bytes, from config.yml `settings.max_transfer_mb` (default 64)."""
    raw: Any = manager.config.current().settings.get("max_transfer_mb")
    value = DEFAULT_MAX_TRANSFER_MB
    if isinstance(raw, int | float) and not isinstance(raw, bool) and 0 < raw <= 64 * 1024:
        value = float(raw)
    elif raw is not None:
        log.warning("setting_ignored", key="max_transfer_mb", value=repr(raw)[:50], default=value)
    return int(value * 1024 * 1024)


async def _cpu(fn: Callable[[bytes], T], data: bytes) -> T:
    if len(data) > CPU_IN_THREAD:
        return await asyncio.to_thread(fn, data)
    return fn(data)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _octal(mode: int | None) -> str | None:
    return None if mode is None else f"{mode:04o}"


def remote_path(path: str) -> str:
    """The SFTP path for what the caller wrote: `~` and `~/x` are the home directory (SFTP's
    starting directory); anything else goes as is, never through a shell."""
    if "\x00" in path:
        raise BadRequest("remote_path contains a NUL byte")
    if path == "~":
        return "."
    if path.startswith("~/"):
        return path[2:].lstrip("/") or "."
    if path.startswith("~"):
        raise BadRequest(
            f"{path!r}: ~user paths are not supported",
            hint="Give the absolute path (or ./~name for a file whose name starts with ~).",
        )
    return path


def file_error(exc: SftpError, path: str, action: str, target: str = "") -> SshkeepError:
    """Map an SFTP status to an SshkeepError that names the path."""
    where = f" on {target}" if target else ""
    if exc.code == FX_NO_SUCH_FILE:
        return NotFound(
            f"{path}: no such file or directory{where}",
            hint="Check the path (relative paths start in the remote home directory); "
            "exec_command('ls -la DIR') lists a directory.",
        )
    if exc.code == FX_PERMISSION_DENIED:
        return RemoteError(
            f"{path}: permission denied ({action}){where}",
            hint="The remote user may not do this; exec_command('ls -ld PATH') shows owner and mode.",
        )
    if exc.code == FX_OP_UNSUPPORTED:
        return RemoteError(f"{path}: the remote SFTP server does not support this ({action})")
    detail = "" if exc.message.lower() in ("failure", "") else f": {exc.message}"
    return RemoteError(f"{path}: {action} failed{where}{detail}")


def _check_encoding_text(data: bytes, path: str, offset: int, cut_allowed: bool) -> tuple[str, int]:
    """Decode a text page; returns (text, bytes used). A page may end inside a character only
    when `cut_allowed` (more of the file follows): it then ends before that character."""
    nul = data.find(b"\x00")
    if nul != -1:
        raise BadRequest(
            f"{path} looks binary (a NUL byte at offset {offset + nul}), so it cannot be read as text",
            hint=BASE64_HINT,
        )
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        if cut_allowed and exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            if exc.start == 0:
                raise BadRequest(
                    f"limit is too small for the character at offset {offset} of {path}",
                    hint="Use a limit of at least 4 bytes.",
                ) from exc
            return data[: exc.start].decode("utf-8"), exc.start
        if exc.start == 0 and offset > 0 and 0x80 <= data[0] <= 0xBF:
            raise BadRequest(
                f"offset {offset} falls inside a UTF-8 character of {path}",
                hint="Page with the next_offset values read_remote_file returns, or use base64.",
            ) from exc
        raise BadRequest(
            f"{path} is not UTF-8 text (invalid byte at offset {offset + exc.start})", hint=BASE64_HINT
        ) from exc


# --- read -------------------------------------------------------------------------------------------


async def _stat_for_read(c: SftpClient, path: str, shown: str) -> Attrs:
    try:
        a = await c.stat(path)
    except SftpError as exc:
        raise file_error(exc, shown, "stat") from exc
    if a.is_dir:
        raise BadRequest(
            f"{shown} is a directory, not a file", hint="exec_command('ls -la PATH') lists a directory."
        )
    if not a.is_regular and a.permissions is not None and not _is_char_device(a):
        # Opening a FIFO would block the SFTP server (and with it the channel) forever.
        raise BadRequest(f"{shown} is not a regular file", hint="Use exec_command to read special files.")
    return a


def _is_char_device(a: Attrs) -> bool:
    return a.permissions is not None and stat.S_ISCHR(a.permissions)


async def _read_range(
    c: SftpClient, path: str, shown: str, offset: int, limit: int | None, max_bytes: int
) -> tuple[bytes, Attrs, int]:
    """(bytes, attrs, file size) for [offset, offset+limit) of `path`."""
    await _stat_for_read(c, path, shown)
    try:
        handle = await c.open(path, FXF_READ)
    except SftpError as exc:
        raise file_error(exc, shown, "open for reading") from exc
    try:
        a = await c.fstat(handle)
        size = a.size or 0
        if size > 0:
            remaining = max(0, size - offset)
            if limit is None and remaining > max_bytes:
                raise PayloadTooLarge(
                    f"{shown} has {remaining} bytes from offset {offset}, over the transfer limit of "
                    f"{max_bytes} bytes",
                    hint=f"Read it in pages (offset=..., limit<={max_bytes}), or raise settings."
                    "max_transfer_mb in config.yml.",
                )
            want = min(limit if limit is not None else max_bytes, remaining)
        else:
            # Size 0 may still hold data (/proc files): read until the end, one byte past the limit
            # so that an oversized file is noticed.
            want = limit if limit is not None else max_bytes + 1
        try:
            data = await c.read(handle, offset, want) if want > 0 else b""
        except SftpError as exc:
            if exc.code == FX_EOF:
                data = b""
            else:
                raise file_error(exc, shown, "read") from exc
        if size == 0:
            if limit is None and len(data) > max_bytes:
                raise PayloadTooLarge(f"{shown} is larger than the transfer limit of {max_bytes} bytes")
            size = offset + len(data) if len(data) < want else offset + len(data) + 1
        elif len(data) < want:
            size = offset + len(data)  # it shrank meanwhile
        return data, a, size
    finally:
        with contextlib.suppress(SftpError, Exception):
            await c.close_handle(handle)


async def read_remote_file(manager: SessionManager, sid: str, req: ReadFileRequest) -> ReadFileResult:
    s = manager.get(sid)
    max_bytes = max_transfer_bytes(manager)
    if req.limit is not None and req.limit > max_bytes:
        raise PayloadTooLarge(
            f"limit {req.limit} is over the transfer limit of {max_bytes} bytes",
            hint="Use a smaller limit, or raise settings.max_transfer_mb in config.yml.",
        )
    path = remote_path(req.remote_path)
    started = time.monotonic()

    async def op(c: SftpClient) -> tuple[bytes, Attrs, int, str]:
        data, a, size = await _read_range(c, path, req.remote_path, req.offset, req.limit, max_bytes)
        try:
            resolved = await c.realpath(path)
        except SftpError:
            resolved = path
        return data, a, size, resolved

    data, attrs, size, resolved = await channels(manager).run(s, op)
    end = req.offset + len(data)
    truncated = end < size
    if req.encoding == "text":
        content, used = _check_encoding_text(data, req.remote_path, req.offset, truncated)
        if used < len(data):
            data = data[:used]
            end = req.offset + used
            truncated = True
    else:
        content = (await _cpu(base64.b64encode, data)).decode("ascii")
    whole = req.offset == 0 and not truncated
    digest = await _cpu(_sha256, data) if whole else None
    log.info(
        "file_read",
        session=sid,
        path=req.remote_path,
        bytes=len(data),
        ms=round((time.monotonic() - started) * 1000, 1),
    )
    return ReadFileResult(
        session_id=sid,
        path=req.remote_path,
        resolved_path=resolved,
        encoding=req.encoding,
        content=content,
        offset=req.offset,
        length=len(data),
        size=size,
        sha256=digest,
        truncated=truncated,
        next_offset=end if truncated else None,
        mode=_octal(attrs.mode),
        mtime=attrs.mtime,
        hint=(
            f"More follows: read_remote_file(offset={end}) for the next page ({size - end} bytes left)."
            if truncated
            else None
        ),
    )


# --- write ------------------------------------------------------------------------------------------


def _decode_content(req: WriteFileRequest) -> bytes:
    if req.encoding == "text":
        try:
            return (req.content or "").encode("utf-8")
        except UnicodeEncodeError as exc:
            raise BadRequest(
                f"content is not valid Unicode text (lone surrogate at {exc.start})",
                hint="Send binary data with encoding='base64'.",
            ) from exc
    try:
        return base64.b64decode(req.content or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(f"content is not valid base64: {exc}") from exc


def _may_write(existing: Attrs, uid: int | None, gid: int | None) -> bool:
    """Whether the permission bits let us write `existing` (uid/gid: ours, seen on a file we made).
    Unknown supplementary groups get the benefit of the doubt."""
    if uid is None or existing.uid is None or existing.permissions is None or uid == 0:
        return True
    if existing.uid == uid:
        return bool(existing.permissions & 0o200)
    return bool(existing.permissions & 0o022)


def _temp_name(base: str) -> str:
    short = base.encode("utf-8", errors="surrogateescape")[:180].decode("utf-8", errors="ignore")
    return f".{short}.sk-{secrets.token_hex(4)}.tmp"


async def _ensure_dirs(c: SftpClient, directory: str, shown: str) -> None:
    """mkdir -p `directory`."""
    missing: list[str] = []
    cur = directory
    while cur and cur not in ("/", "."):
        try:
            a = await c.stat(cur)
        except SftpError as exc:
            if exc.code != FX_NO_SUCH_FILE:
                raise file_error(exc, cur, "stat") from exc
            missing.append(cur)
            cur = posixpath.dirname(cur.rstrip("/"))
            continue
        if not a.is_dir:
            raise BadRequest(f"cannot create {shown}: {cur} exists and is not a directory")
        break
    for d in reversed(missing):
        try:
            await c.mkdir(d)
        except SftpError as exc:
            with contextlib.suppress(SftpError):
                if (await c.stat(d)).is_dir:
                    continue  # made meanwhile
            raise file_error(exc, d, "mkdir") from exc


async def _write_failure(
    c: SftpClient, exc: SftpError, shown: str, directory: str, need: int
) -> SshkeepError:
    """Explain a failed write: SFTP v3 says only 'Failure' for a full disk, so look at free space."""
    if exc.code == FX_FAILURE:
        free = await c.free_bytes(directory or ".")
        if free is not None and free < max(need, 1024 * 1024):
            return RemoteError(
                f"{shown}: no space left on device ({free} bytes free, {need} to write)",
                hint="Free space on the remote filesystem, or write elsewhere.",
            )
        return RemoteError(
            f"{shown}: write failed ({exc.message}; a full disk or an exceeded quota are the usual causes)"
        )
    return file_error(exc, shown, "write")


async def _sha_of(c: SftpClient, path: str, shown: str, max_bytes: int) -> str:
    data, _a, _size = await _read_range(c, path, shown, 0, None, max_bytes)
    return await _cpu(_sha256, data)


async def write_remote_file(manager: SessionManager, sid: str, req: WriteFileRequest) -> WriteFileResult:
    s = manager.get(sid)
    max_bytes = max_transfer_bytes(manager)
    if len(req.content or "") > CPU_IN_THREAD:
        data = await asyncio.to_thread(_decode_content, req)
    else:
        data = _decode_content(req)
    shown = req.remote_path
    if len(data) > max_bytes:
        raise PayloadTooLarge(
            f"{shown}: {len(data)} bytes is over the transfer limit of {max_bytes} bytes",
            hint="Split it (write, then append), or raise settings.max_transfer_mb in config.yml.",
        )
    path = remote_path(req.remote_path)
    if path.endswith("/") or posixpath.basename(path) in ("", ".", ".."):
        raise BadRequest(f"{shown} names a directory, not a file")
    mode = int(req.mode, 8) if req.mode is not None else None
    started = time.monotonic()

    async def op(c: SftpClient) -> WriteFileResult:
        target = path
        try:
            existing: Attrs | None = await c.lstat(path)
        except SftpError as exc:
            if exc.code != FX_NO_SUCH_FILE:
                raise file_error(exc, shown, "stat") from exc
            existing = None
        if existing is not None and existing.is_link:
            try:
                target = await c.realpath(path)
                existing = await c.stat(target)
            except SftpError as exc:
                raise BadRequest(
                    f"{shown} is a symlink whose target is missing",
                    hint="Write to the target path itself.",
                ) from exc
        if existing is not None and existing.is_dir:
            raise BadRequest(f"{shown} is a directory, not a file")
        if existing is not None and not existing.is_regular:
            raise BadRequest(f"{shown} is not a regular file", hint="Use exec_command for special files.")
        if req.expected_sha256 is not None:
            if existing is None:
                raise Conflict(
                    f"{shown} does not exist, but expected_sha256 says it should",
                    hint="Drop expected_sha256 to create it.",
                )
            current = await _sha_of(c, target, shown, max_bytes)
            if current != req.expected_sha256.lower():
                raise Conflict(
                    f"{shown} changed since it was read (sha256 is {current}, expected "
                    f"{req.expected_sha256.lower()}); nothing was written",
                    hint="Read it again, apply your change to the new content, and write with its sha256.",
                )
        directory = posixpath.dirname(target)
        if req.make_parents and directory:
            await _ensure_dirs(c, directory, shown)
        if req.append:
            return await _append(c, target, shown, data, mode, existing)
        return await _replace(c, target, shown, data, mode, existing)

    async def _append(
        c: SftpClient, target: str, shown: str, data: bytes, mode: int | None, existing: Attrs | None
    ) -> WriteFileResult:
        try:
            handle = await c.open(target, FXF_WRITE | FXF_APPEND | FXF_CREAT)
        except SftpError as exc:
            raise _missing_dir(exc, shown, target) from exc
        try:
            before = (await c.fstat(handle)).size or 0
            try:
                # OpenSSH opens with O_APPEND (the offset is ignored); others honour the offset.
                await c.write(handle, before, data)
            except SftpError as exc:
                raise await _write_failure(c, exc, shown, posixpath.dirname(target), len(data)) from exc
            if mode is not None:
                await c.fsetstat(handle, Attrs(permissions=mode))
            await c.fsync(handle)
            after = await c.fstat(handle)
        finally:
            with contextlib.suppress(Exception):
                await c.close_handle(handle)
        return WriteFileResult(
            session_id=sid,
            path=shown,
            resolved_path=await _resolved(c, target),
            bytes_written=len(data),
            size=after.size or before + len(data),
            sha256=None,
            mode=_octal(after.mode),
            created=existing is None,
            appended=True,
            atomic=False,
        )

    async def _replace(
        c: SftpClient, target: str, shown: str, data: bytes, mode: int | None, existing: Attrs | None
    ) -> WriteFileResult:
        directory = posixpath.dirname(target)
        tmp = posixpath.join(directory, _temp_name(posixpath.basename(target)))
        try:
            handle: bytes | None = await c.open(tmp, FXF_WRITE | FXF_CREAT | FXF_EXCL | FXF_TRUNC)
        except SftpError as exc:
            if exc.code == FX_PERMISSION_DENIED and existing is not None:
                # The directory is closed to us but the file may be writable: write it in place.
                return await _in_place(c, target, shown, data, mode, existing)
            raise _missing_dir(exc, shown, target) from exc
        try:
            assert handle is not None
            mine = await c.fstat(handle)
            if existing is not None and not _may_write(existing, mine.uid, mine.gid):
                raise RemoteError(
                    f"{shown}: permission denied (the file is read-only for the remote user; "
                    f"mode {_octal(existing.mode)})",
                    hint="Change its mode first (exec_command('chmod u+w PATH')), or write elsewhere.",
                )
            try:
                await c.write(handle, 0, data)
            except SftpError as exc:
                raise await _write_failure(c, exc, shown, directory, len(data)) from exc
            keep = mode if mode is not None else (existing.mode if existing is not None else None)
            owner = (existing.uid, existing.gid) if existing is not None else (None, None)
            if None not in owner and owner != (mine.uid, mine.gid):
                with contextlib.suppress(SftpError):  # keep the owner: only root (or a member) may
                    await c.fsetstat(handle, Attrs(uid=owner[0], gid=owner[1]))
            if keep is not None:
                await c.fsetstat(handle, Attrs(permissions=keep))
            await c.fsync(handle)
            await c.close_handle(handle)
            handle = None
            try:
                await c.rename(tmp, target)
            except SftpError as exc:
                raise file_error(exc, shown, "rename into place") from exc
        except BaseException:
            with contextlib.suppress(Exception):
                if handle is not None:
                    await c.close_handle(handle)
            with contextlib.suppress(Exception):
                await c.remove(tmp)
            raise
        final = await c.stat(target)
        return WriteFileResult(
            session_id=sid,
            path=shown,
            resolved_path=await _resolved(c, target),
            bytes_written=len(data),
            size=final.size if final.size is not None else len(data),
            sha256=await _cpu(_sha256, data),
            mode=_octal(final.mode),
            created=existing is None,
            atomic=True,
        )

    async def _in_place(
        c: SftpClient, target: str, shown: str, data: bytes, mode: int | None, existing: Attrs
    ) -> WriteFileResult:
        try:
            handle = await c.open(target, FXF_WRITE | FXF_TRUNC)
        except SftpError as exc:
            raise file_error(exc, shown, "write") from exc
        try:
            try:
                await c.write(handle, 0, data)
            except SftpError as exc:
                raise await _write_failure(c, exc, shown, posixpath.dirname(target), len(data)) from exc
            if mode is not None:
                await c.fsetstat(handle, Attrs(permissions=mode))
            await c.fsync(handle)
            final = await c.fstat(handle)
        finally:
            with contextlib.suppress(Exception):
                await c.close_handle(handle)
        return WriteFileResult(
            session_id=sid,
            path=shown,
            resolved_path=await _resolved(c, target),
            bytes_written=len(data),
            size=final.size if final.size is not None else len(data),
            sha256=await _cpu(_sha256, data),
            mode=_octal(final.mode),
            created=False,
            atomic=False,
            hint="Written in place (its directory is not writable for the remote user), not atomically.",
        )

    result = await channels(manager).run(s, op, retry=False)
    log.info(
        "file_written",
        session=sid,
        path=shown,
        bytes=len(data),
        append=req.append,
        ms=round((time.monotonic() - started) * 1000, 1),
    )
    return result


def _missing_dir(exc: SftpError, shown: str, target: str) -> SshkeepError:
    if exc.code == FX_NO_SUCH_FILE:
        directory = posixpath.dirname(target) or "."
        return NotFound(
            f"{shown}: directory {directory} does not exist",
            hint="Pass make_parents=true to create it.",
        )
    return file_error(exc, shown, "create")


async def _resolved(c: SftpClient, path: str) -> str:
    try:
        return await c.realpath(path)
    except SftpError:
        return path


# --- side commands ----------------------------------------------------------------------------------


async def exec_command(manager: SessionManager, sid: str, req: ExecRequest) -> ExecResult:
    s = manager.get(sid)
    o = await run_side_command(channels(manager), s, req.command, req.timeout, EXEC_OUTPUT_CAP)
    hints: list[str] = []
    if o.timed_out:
        hints.append(
            f"Still running after {req.timeout:g}s: its channel was closed, and the remote command may go "
            "on without output. Use send_command for long jobs."
        )
    if o.stdout_truncated or o.stderr_truncated:
        hints.append(
            f"Output past {EXEC_OUTPUT_CAP} bytes per stream was cut: redirect it to a file and page it "
            "with read_remote_file."
        )
    log.info("side_command", session=sid, exit_code=o.exit_code, ms=round(o.seconds * 1000, 1))
    return ExecResult(
        session_id=sid,
        command=req.command,
        exit_code=o.exit_code,
        stdout=o.stdout.decode("utf-8", errors="replace"),
        stderr=o.stderr.decode("utf-8", errors="replace"),
        stdout_truncated=o.stdout_truncated,
        stderr_truncated=o.stderr_truncated,
        timed_out=o.timed_out,
        duration_seconds=round(o.seconds, 3),
        hint=" ".join(hints) or None,
    )
