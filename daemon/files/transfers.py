"""Reading and writing remote files, and side commands, over a session's side channel.

Nothing here types into the terminal: files move over the session's SFTP side channel
(daemon/files/sidechannel.py) as exact bytes, and side commands run on their own exec channel of the
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
from dataclasses import dataclass
from typing import TypeVar

import structlog

from sshkeep.common.errors import BadRequest, Conflict, PayloadTooLarge, RemoteError
from sshkeep.common.models.files import (
    ExecRequest,
    ExecResult,
    ReadFileRequest,
    ReadFileResult,
    WriteFileRequest,
    WriteFileResult,
)
from sshkeep.common.settings import Settings
from sshkeep.daemon.files.errors import create_error, file_error, write_error
from sshkeep.daemon.files.sftp import (
    FX_EOF,
    FX_NO_SUCH_FILE,
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
from sshkeep.daemon.files.sidechannel import SideChannels, run_side_command
from sshkeep.daemon.sessions.session import Session

log = structlog.get_logger(__name__)

T = TypeVar("T")

EXEC_OUTPUT_CAP = 1024 * 1024
CPU_IN_THREAD = 1024 * 1024  # hash/encode bigger payloads off the event loop
BASE64_HINT = "Read it with encoding='base64' to get its exact bytes."


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


async def _sha_of(c: SftpClient, path: str, shown: str, max_bytes: int) -> str:
    data, _a, _size = await _read_range(c, path, shown, 0, None, max_bytes)
    return await _cpu(_sha256, data)


@dataclass(frozen=True)
class _Write:
    """One checked write request: what every step of a write needs."""

    sid: str
    shown: str  # the path as the caller wrote it (errors name this)
    path: str  # the SFTP path
    data: bytes
    mode: int | None
    req: WriteFileRequest
    max_bytes: int

    async def result(
        self,
        c: SftpClient,
        target: str,
        final: Attrs,
        *,
        created: bool,
        atomic: bool,
        sha256: str | None,
        appended: bool = False,
        hint: str | None = None,
        resolved: str | None = None,
    ) -> WriteFileResult:
        """The reply; `resolved` is the target's realpath when the caller asked for it already."""
        return WriteFileResult(
            session_id=self.sid,
            path=self.shown,
            resolved_path=resolved if resolved is not None else await _resolved(c, target),
            bytes_written=len(self.data),
            size=final.size if final.size is not None else len(self.data),
            mode=_octal(final.mode),
            created=created,
            atomic=atomic,
            sha256=sha256,
            appended=appended,
            hint=hint,
        )


async def _write_target(c: SftpClient, w: _Write) -> tuple[str, Attrs | None]:
    """(the path to write, what is there now): a symlink is followed; only regular files qualify."""
    try:
        existing: Attrs | None = await c.lstat(w.path)
    except SftpError as exc:
        if exc.code != FX_NO_SUCH_FILE:
            raise file_error(exc, w.shown, "stat") from exc
        existing = None
    target = w.path
    if existing is not None and existing.is_link:
        try:
            target = await c.realpath(w.path)
            existing = await c.stat(target)
        except SftpError as exc:
            raise BadRequest(
                f"{w.shown} is a symlink whose target is missing", hint="Write to the target path itself."
            ) from exc
    if existing is not None and existing.is_dir:
        raise BadRequest(f"{w.shown} is a directory, not a file")
    if existing is not None and not existing.is_regular:
        raise BadRequest(f"{w.shown} is not a regular file", hint="Use exec_command for special files.")
    return target, existing


async def _check_unchanged(c: SftpClient, w: _Write, target: str, existing: Attrs | None) -> None:
    """The optimistic lock: the file must still have the sha256 the caller read."""
    expected = (w.req.expected_sha256 or "").lower()
    if existing is None:
        raise Conflict(
            f"{w.shown} does not exist, but expected_sha256 says it should",
            hint="Drop expected_sha256 to create it.",
        )
    current = await _sha_of(c, target, w.shown, w.max_bytes)
    if current != expected:
        raise Conflict(
            f"{w.shown} changed since it was read (sha256 is {current}, expected {expected}); "
            "nothing was written",
            hint="Read it again, apply your change to the new content, and write with its sha256.",
        )


async def _write_all(c: SftpClient, w: _Write, handle: bytes, target: str, offset: int = 0) -> None:
    try:
        await c.write(handle, offset, w.data)
    except SftpError as exc:
        raise await write_error(c, exc, w.shown, posixpath.dirname(target), len(w.data)) from exc


async def _close_quietly(c: SftpClient, handle: bytes) -> None:
    with contextlib.suppress(Exception):
        await c.close_handle(handle)


async def _append(c: SftpClient, w: _Write, target: str, existing: Attrs | None) -> WriteFileResult:
    """Append in place (O_APPEND): not atomic, by nature."""
    try:
        handle = await c.open(target, FXF_WRITE | FXF_APPEND | FXF_CREAT)
    except SftpError as exc:
        raise create_error(exc, w.shown, target) from exc
    try:
        before = (await c.fstat(handle)).size or 0
        # OpenSSH opens with O_APPEND (the offset is ignored); others honour the offset.
        await _write_all(c, w, handle, target, before)
        if w.mode is not None:
            await c.fsetstat(handle, Attrs(permissions=w.mode))
        await c.fsync(handle)
        after = await c.fstat(handle)
    finally:
        await _close_quietly(c, handle)
    if not after.size:
        after.size = before + len(w.data)
    return await w.result(
        c, target, after, created=existing is None, atomic=False, appended=True, sha256=None
    )


async def _fill_temp(
    c: SftpClient, w: _Write, handle: bytes, target: str, existing: Attrs | None
) -> Attrs | None:
    """Write the data into the fresh temporary file (and, when we may, give it the target's owner);
    the mode it must get when it is finished, or None to leave it as created."""
    mine = await c.fstat(handle)
    if existing is not None and not _may_write(existing, mine.uid, mine.gid):
        # Renaming over a file the user could not write would bypass its permissions.
        raise RemoteError(
            f"{w.shown}: permission denied (the file is read-only for the remote user; "
            f"mode {_octal(existing.mode)})",
            hint="Change its mode first (exec_command('chmod u+w PATH')), or write elsewhere.",
        )
    await _write_all(c, w, handle, target)
    keep = w.mode if w.mode is not None else (existing.mode if existing is not None else None)
    owner = (existing.uid, existing.gid) if existing is not None else (None, None)
    if None not in owner and owner != (mine.uid, mine.gid):
        with contextlib.suppress(SftpError):  # keep the owner: only root (or a member) may
            await c.fsetstat(handle, Attrs(uid=owner[0], gid=owner[1]))
    return Attrs(permissions=keep) if keep is not None else None


async def _replace(c: SftpClient, w: _Write, target: str, existing: Attrs | None) -> WriteFileResult:
    """Replace atomically: a temporary file in the same directory, then rename over the target."""
    tmp = posixpath.join(posixpath.dirname(target), _temp_name(posixpath.basename(target)))
    try:
        handle: bytes | None = await c.open(tmp, FXF_WRITE | FXF_CREAT | FXF_EXCL | FXF_TRUNC)
    except SftpError as exc:
        if exc.code == FX_PERMISSION_DENIED and existing is not None:
            # The directory is closed to us but the file may be writable: write it in place.
            return await _in_place(c, w, target)
        raise create_error(exc, w.shown, target) from exc
    try:
        assert handle is not None
        attrs = await _fill_temp(c, w, handle, target, existing)
        # The mode, the fsync and the close in one round trip; the handle is closed either way.
        finishing, handle = handle, None
        await c.finish_upload(finishing, attrs)
        try:
            await c.rename(tmp, target)
        except SftpError as exc:
            raise file_error(exc, w.shown, "rename into place") from exc
    except BaseException:
        if handle is not None:
            await _close_quietly(c, handle)
        with contextlib.suppress(Exception):
            await c.remove(tmp)
        raise
    final, resolved = await asyncio.gather(c.stat(target), _resolved(c, target))
    sha = await _cpu(_sha256, w.data)
    return await w.result(
        c, target, final, created=existing is None, atomic=True, sha256=sha, resolved=resolved
    )


async def _in_place(c: SftpClient, w: _Write, target: str) -> WriteFileResult:
    """Truncate and write the file itself (its directory refuses a temporary file): not atomic."""
    try:
        handle = await c.open(target, FXF_WRITE | FXF_TRUNC)
    except SftpError as exc:
        raise file_error(exc, w.shown, "write") from exc
    try:
        await _write_all(c, w, handle, target)
        if w.mode is not None:
            await c.fsetstat(handle, Attrs(permissions=w.mode))
        await c.fsync(handle)
        final = await c.fstat(handle)
    finally:
        await _close_quietly(c, handle)
    return await w.result(
        c,
        target,
        final,
        created=False,
        atomic=False,
        sha256=await _cpu(_sha256, w.data),
        hint="Written in place (its directory is not writable for the remote user), not atomically.",
    )


async def _write(c: SftpClient, w: _Write) -> WriteFileResult:
    """The steps of one write on the SFTP channel."""
    target, existing = await _write_target(c, w)
    if w.req.expected_sha256 is not None:
        await _check_unchanged(c, w, target, existing)
    directory = posixpath.dirname(target)
    if w.req.make_parents and directory:
        await _ensure_dirs(c, directory, w.shown)
    if w.req.append:
        return await _append(c, w, target, existing)
    return await _replace(c, w, target, existing)


async def _resolved(c: SftpClient, path: str) -> str:
    try:
        return await c.realpath(path)
    except SftpError:
        return path


async def _read(
    c: SftpClient, path: str, req: ReadFileRequest, max_bytes: int
) -> tuple[bytes, Attrs, int, str]:
    """(bytes, attrs, file size, resolved path) of one read on the SFTP channel."""
    data, a, size = await _read_range(c, path, req.remote_path, req.offset, req.limit, max_bytes)
    return data, a, size, await _resolved(c, path)


async def _decoded(req: WriteFileRequest) -> bytes:
    if len(req.content or "") > CPU_IN_THREAD:
        return await asyncio.to_thread(_decode_content, req)
    return _decode_content(req)


# --- the service ----------------------------------------------------------------------------------


class Transfers:
    """File reads and writes and side commands over sessions' side channels.

    One per daemon, built by the composition root (daemon/server.py) from `lookup` (a session by
    id, or SessionNotFound), the side channels and `settings` (the current tunables)."""

    def __init__(
        self, lookup: Callable[[str], Session], channels: SideChannels, settings: Callable[[], Settings]
    ) -> None:
        self.lookup = lookup
        self.channels = channels
        self.settings = settings

    async def read(self, sid: str, req: ReadFileRequest) -> ReadFileResult:
        s = self.lookup(sid)
        max_bytes = self.settings().max_transfer_bytes
        if req.limit is not None and req.limit > max_bytes:
            raise PayloadTooLarge(
                f"limit {req.limit} is over the transfer limit of {max_bytes} bytes",
                hint="Use a smaller limit, or raise settings.max_transfer_mb in config.yml.",
            )
        path = remote_path(req.remote_path)
        started = time.monotonic()
        data, attrs, size, resolved = await self.channels.run(s, lambda c: _read(c, path, req, max_bytes))
        end = req.offset + len(data)
        truncated = end < size
        whole = req.offset == 0 and not truncated  # decoding cuts a page only when more follows
        # The hash runs in a worker thread (hashlib lets go of the GIL) while the text is decoded.
        hashing = asyncio.ensure_future(_cpu(_sha256, data)) if whole else None
        try:
            if req.encoding == "text":
                content, used = _check_encoding_text(data, req.remote_path, req.offset, truncated)
                if used < len(data):
                    data = data[:used]
                    end = req.offset + used
                    truncated = True
            else:
                content = (await _cpu(base64.b64encode, data)).decode("ascii")
        except BaseException:
            if hashing is not None:
                hashing.cancel()
            raise
        digest = await hashing if hashing is not None else None
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

    async def write(self, sid: str, req: WriteFileRequest) -> WriteFileResult:
        s = self.lookup(sid)
        max_bytes = self.settings().max_transfer_bytes
        data = await _decoded(req)
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
        w = _Write(sid=sid, shown=shown, path=path, data=data, mode=mode, req=req, max_bytes=max_bytes)
        started = time.monotonic()
        # A write is not repeated blindly on a fresh channel (retry=False).
        result = await self.channels.run(s, lambda c: _write(c, w), retry=False)
        log.info(
            "file_written",
            session=sid,
            path=shown,
            bytes=len(data),
            append=req.append,
            ms=round((time.monotonic() - started) * 1000, 1),
        )
        return result

    async def exec(self, sid: str, req: ExecRequest) -> ExecResult:
        s = self.lookup(sid)
        o = await run_side_command(self.channels, s, req.command, req.timeout, EXEC_OUTPUT_CAP)
        hints: list[str] = []
        if o.timed_out:
            hints.append(
                f"Still running after {req.timeout:g}s: its channel was closed, and the remote command may "
                "go on without output. Use send_command for long jobs."
            )
        if o.stdout_truncated or o.stderr_truncated:
            hints.append(
                f"Output past {EXEC_OUTPUT_CAP} bytes per stream was cut: redirect it to a file and page "
                "it with read_remote_file."
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
