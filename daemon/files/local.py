"""Moving files and command output between a session's host and the daemon's own disk.

Bytes never pass through the agent's context and never sit whole in memory: they stream over
the SFTP side channel in 1 MiB blocks, hashed on the way. A local file is written as `<name>.part`,
fsynced, then renamed into place, so it is whole or absent; a remote file is replaced through a
temporary file and a rename, like write_remote_file.

Local paths are confined to `settings.local_roots` in config.yml (default: only the sshkeep
downloads directory under the state directory); a relative path lies under the first root. A
path outside every root (after resolving symlinks and `..`) is refused with the roots named.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import stat
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import TypeVar

import structlog

from sshkeep.common.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from sshkeep.common.models.files import ReadFileRequest, ReadFileResult, WriteFileRequest, WriteFileResult
from sshkeep.common.models.sessions import SavedOutput
from sshkeep.common.paths import ensure_private_dir
from sshkeep.common.settings import Settings
from sshkeep.daemon import memtrim
from sshkeep.daemon.files import transfers, writeback
from sshkeep.daemon.files.errors import create_error, file_error, write_error
from sshkeep.daemon.files.sftp import (
    FX_NO_SUCH_FILE,
    FXF_CREAT,
    FXF_EXCL,
    FXF_READ,
    FXF_TRUNC,
    FXF_WRITE,
    Attrs,
    SftpClient,
    SftpError,
)
from sshkeep.daemon.files.sidechannel import SideChannels
from sshkeep.daemon.sessions.session import Session

log = structlog.get_logger(__name__)

BLOCK = 1024 * 1024

T = TypeVar("T")


class _PartFile:
    """`<dest>.part`, written in a worker thread, renamed over `dest` once complete.

    A block handed to `write` is hashed and written (and its writeback started, see
    daemon/files/writeback.py) in a worker thread while the caller fetches the next one: at most
    one block is in the thread, and a failure is raised by the next `write` or by `commit`."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.part = dest.with_name(dest.name + ".part")
        self.fd: int | None = None
        self.sha = hashlib.sha256()
        self.size = 0
        self._storing: asyncio.Future[None] | None = None

    async def open(self) -> None:
        if not self.dest.parent.is_dir():
            raise NotFound(
                f"local directory {self.dest.parent} does not exist",
                hint="Create it first, or use a path in an existing directory.",
            )
        self.fd = await asyncio.to_thread(os.open, self.part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)

    async def write(self, data: bytes | Sequence[memoryview]) -> None:
        assert self.fd is not None
        views = [memoryview(data)] if isinstance(data, bytes) else list(data)
        await self._stored()
        start = self.size
        self.size += sum(len(v) for v in views)
        self._storing = asyncio.ensure_future(asyncio.to_thread(self._store, self.fd, views, start))

    def _store(self, fd: int, views: list[memoryview], start: int) -> None:
        _hash(self.sha, views)  # hashing holds no GIL, but would hold the event loop
        n = writeback.write_all(fd, views)
        writeback.start_writeback(fd, start, n)

    async def _stored(self) -> None:
        storing = self._storing
        if storing is not None:
            # Shielded: a cancelled caller must not stop waiting while the thread still writes to
            # the fd (abort closes it only once the thread is done).
            await asyncio.shield(storing)
            self._storing = None

    async def commit(self) -> None:
        await self._stored()
        fd, self.fd = self.fd, None
        assert fd is not None
        part, dest = self.part, self.dest

        def finish() -> None:
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(part, dest)

        await asyncio.to_thread(finish)

    async def abort(self) -> None:
        storing, self._storing = self._storing, None
        fd, self.fd = self.fd, None

        def drop() -> None:
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                self.part.unlink()

        if storing is not None and not storing.done():
            # The fd is closed once the thread is done with it, even if this wait is cancelled.
            def dropping(f: asyncio.Future[None]) -> None:
                if not f.cancelled():
                    f.exception()  # retrieved: the error that led here is already being raised
                drop()

            storing.add_done_callback(dropping)
            with contextlib.suppress(BaseException):
                await asyncio.shield(storing)
            return
        if storing is not None and not storing.cancelled():
            storing.exception()
        await asyncio.to_thread(drop)


def _hash(sha: hashlib._Hash, views: list[memoryview]) -> None:
    for v in views:
        sha.update(v)


async def _stream_remote(
    c: SftpClient, path: str, shown: str, sink: _PartFile | None, limit: int
) -> tuple[Attrs, int, str]:
    """Read the whole remote file block by block into `sink` (and hash it): (attrs, size, sha256)."""
    a = await transfers._stat_for_read(c, path, shown)
    if a.size is not None and a.size > limit:
        raise PayloadTooLarge(
            f"{shown} has {a.size} bytes, over the local transfer limit of {limit} bytes",
            hint="Raise settings.max_local_transfer_mb in config.yml.",
        )
    try:
        handle = await c.open(path, FXF_READ)
    except SftpError as exc:
        raise file_error(exc, shown, "open for reading") from exc
    sha = sink.sha if sink is not None else hashlib.sha256()
    offset = 0
    try:
        # The reads stay in flight while a block is hashed and stored (both in a worker thread).
        async for views in c.read_views(handle, 0, BLOCK):
            offset += sum(len(v) for v in views)
            if offset > limit:
                raise PayloadTooLarge(f"{shown} grew past the local transfer limit of {limit} bytes")
            if sink is not None:
                await sink.write(views)  # hashes it too
            else:
                await asyncio.to_thread(_hash, sha, views)
    except SftpError as exc:
        raise file_error(exc, shown, "read") from exc
    finally:
        with contextlib.suppress(Exception):
            await c.close_handle(handle)
    if sink is not None:
        await sink._stored()  # the last block is in the hash
    return a, offset, sha.hexdigest()


async def _settled(task: asyncio.Future[T]) -> None:
    """Wait for a request sent ahead whose answer is no longer wanted."""
    with contextlib.suppress(Exception):
        await task


class _UploadFailed(Exception):
    """A WRITE the server refused, with the size of the block it belonged to."""

    def __init__(self, error: SftpError, block: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.block = block


async def upload(c: SftpClient, handle: bytes, src: Path) -> tuple[int, str]:
    """Write the local file `src` to the open remote `handle` from offset 0: (bytes, sha256).

    Blocks are read and hashed in a worker thread one block ahead, so the disk, the hash and the
    SFTP writes (which stay in flight across blocks) overlap."""
    sha = hashlib.sha256()
    written = 0
    with open(src, "rb") as f:  # noqa: ASYNC230 - each block is read in a worker thread

        def take() -> bytes:
            block = f.read(BLOCK)
            sha.update(block)
            return block

        stream = c.write_stream(handle, 0)
        ahead = asyncio.ensure_future(asyncio.to_thread(take))
        block = b""
        try:
            while block := await ahead:
                ahead = asyncio.ensure_future(asyncio.to_thread(take))
                await stream.send(block)
                written += len(block)
            await stream.finish()
        except SftpError as exc:
            raise _UploadFailed(exc, len(block) or BLOCK) from exc
        finally:
            # The file stays open until the thread reading ahead is done with it.
            with contextlib.suppress(BaseException):
                await ahead
    return written, sha.hexdigest()


class LocalFiles:
    """Transfers between sessions' hosts and local paths, and command output saved locally.

    Built by the composition root from `lookup` (a session by id), the side channels, `settings`
    (the current tunables: local_roots, max_local_transfer_mb) and the default downloads directory."""

    def __init__(
        self,
        lookup: Callable[[str], Session],
        channels: SideChannels,
        settings: Callable[[], Settings],
        downloads: Path,
    ) -> None:
        self.lookup = lookup
        self.channels = channels
        self.settings = settings
        self.downloads = downloads

    def roots(self) -> list[Path]:
        """The directories local paths may lie in (resolved); the default one is created if missing."""
        roots = [Path(r).expanduser() for r in self.settings().local_roots]
        if not roots:
            ensure_private_dir(self.downloads)
            roots = [self.downloads]
        return [r.resolve() for r in roots]

    def confine(self, raw: str) -> Path:
        """The absolute local path for `raw`, or Forbidden when it lies outside every allowed root."""
        if "\x00" in raw:
            raise BadRequest("local_path contains a NUL byte")
        roots = self.roots()
        path = Path(raw).expanduser()
        if not path.is_absolute():
            path = roots[0] / path
        # Resolve the directory (symlinks, ..) but not the file itself: it is replaced by a rename.
        resolved = path.parent.resolve() / path.name
        if path.name in ("", ".", "..") or not any(resolved.is_relative_to(r) for r in roots):
            raise Forbidden(
                f"local path {raw!r} is outside the allowed local directories: {', '.join(map(str, roots))}",
                hint="Use a path under one of them (a relative path goes under the first), or add a "
                "directory to settings.local_roots in config.yml.",
            )
        return resolved

    async def save_output(self, pages: AsyncIterator[list[str]], local_path: str) -> SavedOutput:
        """Write a command's rendered output, page by page, to a local file (atomically)."""
        dest = self.confine(local_path)
        out = _PartFile(dest)
        await out.open()
        count = 0
        try:
            async for lines in pages:
                count += len(lines)
                await out.write(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))
            await out.commit()
        except BaseException:
            await out.abort()
            raise
        return SavedOutput(local_path=str(dest), lines=count, size=out.size, sha256=out.sha.hexdigest())

    async def read_to_local(self, sid: str, req: ReadFileRequest) -> ReadFileResult:
        """read_remote_file with local_path (copy the file here) or metadata_only (size, sha256, mode)."""
        s = self.lookup(sid)
        if req.offset or req.limit is not None:
            raise BadRequest(
                "offset and limit do not go with local_path or metadata_only: the whole file is read"
            )
        path = transfers.remote_path(req.remote_path)
        limit = self.settings().max_local_transfer_bytes
        dest = self.confine(req.local_path) if req.local_path is not None else None
        sink = _PartFile(dest) if dest is not None else None

        async def op(c: SftpClient) -> tuple[Attrs, int, str, str]:
            # The realpath goes first, answered while the data flows: no round trip after it.
            resolving = asyncio.ensure_future(transfers._resolved(c, path))
            try:
                if sink is not None:
                    await sink.open()
                try:
                    a, size, digest = await _stream_remote(c, path, req.remote_path, sink, limit)
                    if sink is not None:
                        await sink.commit()
                except BaseException:
                    if sink is not None:
                        await sink.abort()
                    raise
            except BaseException:
                await _settled(resolving)
                raise
            return a, size, digest, await resolving

        attrs, size, digest, resolved = await self.channels.run(s, op, retry=False)
        memtrim.trim_soon(size)  # the blocks went through worker threads' malloc arenas
        log.info("file_read_local", session=sid, path=req.remote_path, bytes=size, local=str(dest or ""))
        return ReadFileResult(
            session_id=sid,
            path=req.remote_path,
            resolved_path=resolved,
            encoding=req.encoding,
            content="",
            local_path=str(dest) if dest is not None else None,
            offset=0,
            length=size if dest is not None else 0,
            size=size,
            sha256=digest,
            truncated=False,
            mode=transfers._octal(attrs.mode),
            mtime=attrs.mtime,
        )

    async def write_from_local(self, sid: str, req: WriteFileRequest) -> WriteFileResult:
        """write_remote_file with local_path: upload a local file, replacing the remote one atomically."""
        s = self.lookup(sid)
        assert req.local_path is not None
        if req.append:
            raise BadRequest("append does not go with local_path", hint="Upload the whole file instead.")
        src = self.confine(req.local_path).resolve()
        try:
            st = await asyncio.to_thread(os.stat, src)
        except FileNotFoundError as exc:
            raise NotFound(f"local file {src} does not exist") from exc
        if not stat.S_ISREG(st.st_mode):
            raise BadRequest(f"local path {src} is not a regular file")
        limit = self.settings().max_local_transfer_bytes
        if st.st_size > limit:
            raise PayloadTooLarge(
                f"{src} has {st.st_size} bytes, over the local transfer limit of {limit} bytes"
            )
        shown = req.remote_path
        path = transfers.remote_path(req.remote_path)
        if path.endswith("/") or posixpath.basename(path) in ("", ".", ".."):
            raise BadRequest(f"{shown} names a directory, not a file")
        mode = int(req.mode, 8) if req.mode is not None else None

        async def op(c: SftpClient) -> WriteFileResult:
            # stat and realpath sent together (a missing file's realpath fails: it is not used).
            resolving = asyncio.ensure_future(transfers._resolved(c, path))
            try:
                existing: Attrs | None = await c.stat(path)
            except SftpError as exc:
                if exc.code != FX_NO_SUCH_FILE:
                    await _settled(resolving)
                    raise file_error(exc, shown, "stat") from exc
                existing = None
            except BaseException:
                await _settled(resolving)
                raise
            resolved_now = await resolving
            target = resolved_now if existing is not None else path
            if existing is not None and not existing.is_regular:
                raise BadRequest(f"{shown} is not a regular file")
            if req.expected_sha256 is not None:
                if existing is None:
                    raise Conflict(f"{shown} does not exist, but expected_sha256 says it should")
                _a, _size, got = await _stream_remote(c, target, shown, None, limit)
                if got != req.expected_sha256.lower():
                    raise Conflict(
                        f"{shown} changed since it was read (sha256 is {got}); nothing was written",
                        hint="Read it again and write with its new sha256.",
                    )
            directory = posixpath.dirname(target)
            if req.make_parents and directory:
                await transfers._ensure_dirs(c, directory, shown)
            tmp = posixpath.join(directory, transfers._temp_name(posixpath.basename(target)))
            try:
                handle = await c.open(tmp, FXF_WRITE | FXF_CREAT | FXF_EXCL | FXF_TRUNC)
            except SftpError as exc:
                raise create_error(exc, shown, target) from exc
            closed = False
            try:
                try:
                    written, digest = await upload(c, handle, src)
                except _UploadFailed as exc:
                    raise await write_error(c, exc.error, shown, directory, exc.block) from exc.error
                keep = mode if mode is not None else (existing.mode if existing is not None else None)
                closed = True  # finish_upload sends the CLOSE before it waits for anything
                await c.finish_upload(handle, Attrs(permissions=keep) if keep is not None else None)
                await c.rename(tmp, target)
            except BaseException:
                if not closed:
                    with contextlib.suppress(Exception):
                        await c.close_handle(handle)
                with contextlib.suppress(Exception):
                    await c.remove(tmp)
                raise
            final, resolved = await asyncio.gather(c.stat(target), transfers._resolved(c, target))
            return WriteFileResult(
                session_id=sid,
                path=shown,
                resolved_path=resolved,
                bytes_written=written,
                size=final.size if final.size is not None else written,
                sha256=digest,
                mode=transfers._octal(final.mode),
                created=existing is None,
                atomic=True,
            )

        result = await self.channels.run(s, op, retry=False)
        memtrim.trim_soon(result.bytes_written)
        log.info("file_written_local", session=sid, path=shown, bytes=result.bytes_written, local=str(src))
        return result
