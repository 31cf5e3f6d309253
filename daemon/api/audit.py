"""The audit log: one JSON line (file mode 0600) per mutating API call, secrets masked.

Each line says when, who (peer uid/pid), which request (id), which session, which tool/route, what
was asked (command text and keys with secrets masked; for file writes only path and size, never
the content), the decision (allowed or refused) and the result (HTTP status, result status or
error code, exit code). The middleware sits outside the error middleware, so it records the final
status of every request, failures included. The file rotates by size (settings `audit_max_bytes`,
`audit_keep`); a line is one append to the file held open (see `AuditLog`), in order.

Lines are hash-chained (`sshkeep.common.auditchain`): `sshkeep audit verify` names the first
broken link, across rotated files. The guard rails' decisions (asked, approved, declined, expired,
refused) get lines of their own (`"event": "policy"`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import json
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web
from pydantic import BaseModel

from sshkeep.common import auditchain
from sshkeep.common.auditchain import timestamp
from sshkeep.common.keyrecord import SECRET_QUESTION_KINDS, record_keys
from sshkeep.common.logs import MASK, SECRET_KEYS, mask_text, rotate
from sshkeep.common.operations import MUTATING, op_for
from sshkeep.common.settings import Settings
from sshkeep.daemon import memtrim
from sshkeep.daemon.api.peer import peer_of
from sshkeep.daemon.disk import is_full_error
from sshkeep.daemon.sessions.session import Session

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

MAX_TEXT = 4096  # chars of a command (or other string) kept in a line
MAX_ITEMS = 50  # keys / list items kept in a line
MAX_REPLY_PARSE = 1024 * 1024  # replies larger than this are not parsed for their status
PARSE_IN_THREAD = 256 * 1024  # request bodies larger than this are summarised off the event loop
MAX_FAST_LINE = 16 * 1024  # lines up to this size are appended by the event loop itself
CONTENT_KEYS = frozenset({"content", "data"})  # file bodies: logged as their size only
# Operations whose body holds a secret: never summarised (the handler records name/length/hash).
SECRET_BODIES = frozenset({"answer_question"})
MAX_HELD = 10000  # audit records a full disk may hold in memory; older ones are counted, then said
RETRY_FIRST, RETRY_MAX = 0.5, 5.0  # seconds between attempts while the disk is full
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class AuditLog:
    """Appends audit records to `path`, rotating it by the current settings.

    A line is written before the request's reply leaves. The common case is one `write(2)` of a
    few hundred bytes on the event loop to the file held open in append mode (as cheap as the
    daemon's own log lines, and no thread hop); opening the file, rotating it, or a line that
    does not fit the current file go through one worker thread, and lines queued behind that
    wait their turn, so lines stay in order.
    """

    def __init__(self, path: Path, settings: Callable[[], Settings]) -> None:
        self.path = path
        self._settings = settings
        # One worker: lines stay in order (so the hash chain holds) and rotation never races a write.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
        self._path = str(path)
        self._fd: int | None = None
        self._fd_id: tuple[int, int] | None = None  # (inode, device) of the open file
        self._slow = asyncio.Lock()
        self._prev: str | None = None  # the last line's hash: the next line's link
        # Records a full disk kept from the file, oldest first, sealed only when written (so each
        # links to the line really before it); beyond MAX_HELD the oldest are counted, then said.
        self._held: collections.deque[dict[str, Any]] = collections.deque()
        self._lost = 0
        self._full_since: float | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._backoff = RETRY_FIRST

    def waiting(self) -> str | None:
        """What a full disk keeps from the file (for the replies' disk notice)."""
        if self._full_since is None:
            return None
        lost = f", {self._lost} more counted and dropped (memory bound)" if self._lost else ""
        return f"{len(self._held)} audit lines held in memory{lost}, written in order once space returns"

    async def write(self, record: Mapping[str, Any]) -> None:
        if self._full_since is not None:
            self._hold(dict(record))
            return
        try:
            await self._write(record)
        except OSError as exc:
            if not is_full_error(exc):  # a failing audit file must not fail the request itself
                log.warning("audit_write_failed", path=str(self.path), error=str(exc))
                return
            self._full_since = time.time()
            log.warning("audit_disk_full", path=str(self.path), error=str(exc))
            self._hold(dict(record))

    def _hold(self, record: dict[str, Any]) -> None:
        self._held.append(record)
        while len(self._held) > MAX_HELD:
            self._held.popleft()
            self._lost += 1
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(self._backoff, self._start_retry)

    def _start_retry(self) -> None:
        asyncio.get_running_loop().create_task(self._flush_held(), name="audit-retry")

    async def _flush_held(self) -> None:
        """Write the held records in order; stop at the first that still does not fit."""
        self._retry = None
        while self._lost or self._held:
            if self._lost:
                record: dict[str, Any] = {
                    "ts": timestamp(),
                    "event": "audit_gap",
                    "lost": self._lost,
                    "since": datetime.fromtimestamp(self._full_since or time.time(), UTC).isoformat(),
                    "reason": "disk full: records beyond the in-memory bound were counted, not kept",
                }
            else:
                record = self._held[0]
            try:
                await self._write(record)
            except OSError as exc:
                if not is_full_error(exc):
                    log.warning("audit_write_failed", path=str(self.path), error=str(exc))
                else:
                    self._backoff = min(RETRY_MAX, self._backoff * 2)
                    self._retry = asyncio.get_running_loop().call_later(self._backoff, self._start_retry)
                    return
            if self._lost:
                self._lost = 0
            else:
                self._held.popleft()
        log.info("audit_written", held_since=self._full_since)
        self._full_since, self._backoff = None, RETRY_FIRST

    def _write_now(self, record: Mapping[str, Any]) -> bool:
        """Seal and append on the event loop, when nothing is queued and the open file takes the
        line (False: nothing was written)."""
        if self._slow.locked() or self._prev is None or self._fd is None:
            return False
        data, digest = auditchain.seal(record, self._prev)
        if not self._append_fast(data):
            return False
        self._prev = digest
        return True

    async def _write(self, record: Mapping[str, Any]) -> None:
        """Seal and append one record; on failure nothing of it stays in the file."""
        if self._write_now(record):
            return
        # Otherwise in the worker, in order: the lock is taken without yielding when it is free.
        async with self._slow:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._chain, dict(record))

    def _chain(self, record: dict[str, Any]) -> None:
        if self._prev is None:
            self._prev = auditchain.last_hash(self.path)
        data, digest = auditchain.seal(record, self._prev)
        self._append_sealed(data, digest)

    def _append_sealed(self, data: bytes, digest: str) -> None:
        self._append(data)
        self._prev = digest

    def _rotation(self) -> tuple[int, int]:
        try:
            return self._settings().audit_rotation
        except Exception:
            return Settings().audit_rotation

    def _append_fast(self, data: bytes) -> bool:
        """Append on the calling thread when the open file is still `path` and has room."""
        fd = self._fd
        if fd is None or len(data) > MAX_FAST_LINE:
            return False
        max_bytes, _keep = self._rotation()
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            return False
        # The file at `path` is the open one (so its size and mode are the open file's): one stat.
        if (st.st_ino, st.st_dev) != self._fd_id or st.st_mode & 0o077:
            return False
        if max_bytes > 0 and st.st_size > 0 and st.st_size + len(data) >= max_bytes:
            return False
        _write_whole(fd, data, st.st_size)
        return True

    def _append(self, data: bytes) -> None:
        """Rotate when needed, (re)open the file, append (in the worker thread)."""
        max_bytes, keep = self._rotation()
        if rotate(self.path, max_bytes, keep, incoming=len(data)) or not self._is_open_file():
            self._close_fd()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fd = self._fd
        st = os.fstat(fd)
        self._fd_id = (st.st_ino, st.st_dev)
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o600)
        _write_whole(fd, data, st.st_size)

    def _is_open_file(self) -> bool:
        if self._fd is None:
            return False
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        st = os.fstat(self._fd)
        return (here.st_dev, here.st_ino) == (st.st_dev, st.st_ino)

    def _close_fd(self) -> None:
        fd, self._fd, self._fd_id = self._fd, None, None
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._close_fd()


def _write_whole(fd: int, data: bytes, size: int) -> None:
    """Append all of `data` to the file of `fd` (at `size`), or none of it: a line torn by a full
    disk is cut off again (truncating needs no space), so the chain never holds half a line."""
    view = memoryview(data)
    try:
        while view:
            n = os.write(fd, view)
            if n == 0:
                raise OSError(errno.ENOSPC, "no space left on device (short write)")
            view = view[n:]
    except OSError:
        os.ftruncate(fd, size)
        raise


SessionLookup = Callable[[str], Session | None]

AUDIT = web.AppKey("audit", AuditLog)
AUDIT_SESSION = web.AppKey[SessionLookup]("audit_session")


class Note:
    """What a request's audit line is made from, filled in as the request goes (one per request,
    put on it by the audit middleware; `note_of` finds it)."""

    __slots__ = ("body", "decision", "fields", "policy", "reply", "request_id", "secret")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        # What the handler already parsed: the request body's JSON object and the reply's model.
        # The line is made from these instead of parsing the body and the reply's bytes again.
        self.body: dict[str, Any] | None = None
        self.reply: BaseModel | None = None
        # The hook for a check that runs before the handler (e.g. a policy): what it decided. Without
        # one, a request is "allowed" unless it was answered 403.
        self.decision: str | None = None
        self.policy: dict[str, Any] | None = None  # the policy, class and reason that decided
        # What a secret-typing handler lets the line say: name, length, hash prefix, who answered.
        self.secret: dict[str, Any] | None = None
        # The line's fields that describe the request, and its params (or `_NOT_YET`), once known.
        self.fields: tuple[dict[str, Any], Any] | None = None


NOTE = web.RequestKey("audit_note", Note)


def note_of(request: web.Request) -> Note:
    """The request's note; a detached one (read by nobody) where no audit middleware runs."""
    try:
        return request[NOTE]
    except KeyError:
        return Note("")


def install(
    app: web.Application,
    audit_log: Path,
    daemon_log: Path,
    settings: Callable[[], Settings],
    session: SessionLookup,
) -> None:
    """Add the audit middleware as the outermost one, and its log, to `app` (before it starts).

    `session` finds a live session by id (to mask keys typed at a password prompt); `settings`
    gives the current tunables (log rotation)."""
    app[AUDIT] = AuditLog(audit_log, settings)
    app[AUDIT_SESSION] = session
    app.middlewares.insert(0, audit_middleware)

    async def _close(app: web.Application) -> None:
        await asyncio.to_thread(app[AUDIT].close)

    async def _daemon_log_keeper(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(keep_daemon_log(daemon_log, settings), name="daemon-log-keeper")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.on_cleanup.append(_close)
    app.cleanup_ctx.append(_daemon_log_keeper)


# --- the daemon's own log -----------------------------------------------------------------------

DAEMON_LOG_CHECK_SECONDS = 60.0


def cap_daemon_log(path: Path, max_bytes: int, keep: int) -> bool:
    """Rotate `path` when it is our stderr (an auto-started daemon) and too big; reopen stdout/stderr.

    A daemon started by the shim appends its stderr to `path` for its whole life, so rotating it
    only at the next start would let a long-lived daemon grow it without bound.
    """
    try:
        ours = os.fstat(2)
        st = os.stat(path)
    except OSError:
        return False
    if (ours.st_dev, ours.st_ino) != (st.st_dev, st.st_ino) or not rotate(path, max_bytes, keep):
        return False
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    return True


async def keep_daemon_log(path: Path, settings: Callable[[], Settings]) -> None:
    """Check the daemon's own log against its rotation settings, forever."""

    def check() -> None:
        max_bytes, keep = settings().daemon_log_rotation
        if cap_daemon_log(path, max_bytes, keep):
            log.info("daemon_log_rotated", path=str(path), max_bytes=max_bytes, keep=keep)

    while True:
        try:
            await asyncio.to_thread(check)
        except Exception:
            log.exception("daemon_log_check_failed")
        await asyncio.sleep(DAEMON_LOG_CHECK_SECONDS)


# --- summarising requests -----------------------------------------------------------------------


def clip(text: str, limit: int = MAX_TEXT) -> str:
    """Masked `text`, cut to `limit` chars (with the full length noted)."""
    if len(text) > limit:
        return mask_text(text[:limit]) + f"… [{len(text)} chars]"
    return mask_text(text)


# Type tuples made once (an `int | float` in an isinstance call is built anew at each call).
_NUMBERS = (bool, int, float)
_PLAIN = (str, int, float, bool)


def _secret_key(key: str) -> bool:
    """Whether a body's key names a secret (the same few short keys come in every request: their
    answers are remembered, a long key is searched each time)."""
    return _short_secret_key(key) if len(key) <= 64 else SECRET_KEYS.search(key) is not None


@functools.lru_cache(maxsize=1024)
def _short_secret_key(key: str) -> bool:
    return SECRET_KEYS.search(key) is not None


def _clip_path(path: str) -> str:
    """`clip(path, 512)`; for a path of the usual length, remembered (a route's paths repeat, and
    masking costs a regular expression search over every character)."""
    return _clip_short_path(path) if len(path) <= 256 else clip(path, 512)


@functools.lru_cache(maxsize=1024)
def _clip_short_path(path: str) -> str:
    return clip(path, 512)


def summarize(value: Any, key: str = "", depth: int = 0) -> Any:
    """A loggable, masked, bounded copy of a JSON value."""
    if key and _secret_key(key):
        return MASK
    if key in CONTENT_KEYS:
        size = len(value) if isinstance(value, str | list | dict) else None
        return f"<{size} chars>" if isinstance(value, str) else f"<{type(value).__name__} of {size}>"
    if isinstance(value, str):
        return clip(value)
    if isinstance(value, _NUMBERS) or value is None:
        return value
    if depth >= 4:
        return f"<{type(value).__name__}>"
    if isinstance(value, list):
        items = [summarize(v, "", depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"… [{len(value)} items]")
        return items
    if isinstance(value, dict):
        out = {str(k)[:64]: summarize(v, str(k), depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
        if len(value) > MAX_ITEMS:
            out["…"] = f"[{len(value)} keys]"
        return out
    return f"<{type(value).__name__}>"


def summarize_keys(keys: list[Any], secret_prompt: bool) -> list[Any]:
    """Key names as they are; secret text (asked for, or secret-looking) as length + SHA-256 prefix."""
    return record_keys(keys, secret_prompt)


def summarize_body(raw: bytes | None, secret_prompt: bool) -> Any:
    if raw is None:
        return None
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        # Never log what could not be parsed: it may be anything, secrets included.
        return f"<unparsed body, {len(raw)} bytes>"
    if not isinstance(data, dict):
        return f"<{type(data).__name__} body, {len(raw)} bytes>"
    return summarize_parsed(data, secret_prompt)


def summarize_parsed(data: dict[str, Any], secret_prompt: bool) -> Any:
    """`summarize_body` of a body the handler has already parsed into this JSON object."""
    out = summarize(data, "", 0)
    if isinstance(out, dict) and isinstance(data.get("keys"), list):
        out["keys"] = summarize_keys(data["keys"], secret_prompt)
    return out


def _secret_prompt(request: web.Request) -> bool:
    """Whether the session's terminal is asking for a password (keys typed now are secret)."""
    sid = request.match_info.get("session_id")
    if not sid or not request.path.endswith("/keys"):
        return False
    s = request.app[AUDIT_SESSION](sid)
    if s is None or s.dead:
        return False
    try:
        q = s.pending_question()
    except Exception:
        return True  # unsure: mask
    return q is not None and q.kind in SECRET_QUESTION_KINDS


def _peer_fields(request: web.Request) -> dict[str, int] | None:
    peer = peer_of(request)
    return {"uid": peer.uid, "pid": peer.pid} if peer is not None else None


_REPLY_NAMES = ("session_id", "command_id", "exit_code", "removed", "closed", "sent")


@functools.cache
def _reply_names(model: type[BaseModel]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Which of `_REPLY_NAMES`, and of the result's names, a reply model has (worked out once)."""
    fields = model.model_fields
    return tuple(n for n in _REPLY_NAMES if n in fields), tuple(n for n in ("status", "state") if n in fields)


def _model_fields(model: BaseModel) -> dict[str, Any]:
    """`_reply_fields` of a reply the handler gave as a model: the same fields, taken from it
    instead of from the bytes it was serialised to (plain values as they are; anything else as
    its JSON form)."""
    names, results = _reply_names(type(model))
    out: dict[str, Any] = {name: _json_value(model, name) for name in names}
    for name in results:
        if isinstance(value := _json_value(model, name), str):
            out["result"] = value
            break
    return out


def _json_value(model: BaseModel, name: str) -> Any:
    value = getattr(model, name)
    if value is None or isinstance(value, _PLAIN):
        return value  # a str enum member is a str: its value, as JSON would give it
    return model.model_dump(mode="json", include={name})[name]


def _reply_fields(resp: web.StreamResponse, model: BaseModel | None = None) -> dict[str, Any]:
    """Result status, exit code, ids or error code from a JSON reply."""
    if model is not None:
        return _model_fields(model)
    if not isinstance(resp, web.Response) or not isinstance(resp.body, bytes):
        return {}
    if len(resp.body) > MAX_REPLY_PARSE:
        return {}
    try:
        data = json.loads(resp.body)
    except (ValueError, RecursionError):
        return {}
    if not isinstance(data, dict):
        return {}
    err = data.get("error")
    if isinstance(err, dict):
        return {"result": err.get("code"), "error": clip(str(err.get("message", "")), 300)}
    out: dict[str, Any] = {}
    for name in _REPLY_NAMES:
        if name in data:
            out[name] = data[name]
    for name in ("status", "state"):
        if isinstance(data.get(name), str):
            out["result"] = data[name]
            break
    return out


def request_id(request: web.Request) -> str:
    """The caller's X-Request-Id when it is sane, else a fresh one."""
    given = request.headers.get("X-Request-Id", "")
    return given if _REQUEST_ID.match(given) else os.urandom(6).hex()


# --- the middleware -----------------------------------------------------------------------------


@web.middleware
async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request_id(request)
    note = request[NOTE] = Note(rid)
    audited = request.method in MUTATING
    start = time.monotonic()
    secret_prompt = audited and _secret_prompt(request)
    if audited:
        # What the line says of the request is worked out while the handler waits (a command
        # running, say), so that only the reply's own fields are left when the reply is ready.
        asyncio.get_running_loop().call_soon(_note_request, request, note, secret_prompt)
    try:
        resp = await handler(request)
    except asyncio.CancelledError:
        if audited:  # the client went away: record it without delaying the cancellation
            record = _record(note, _request_fields(request, note, secret_prompt)[0], start, None, None)
            asyncio.get_running_loop().create_task(request.app[AUDIT].write(record))
        raise
    if not resp.prepared:
        resp.headers["X-Request-Id"] = rid
    # A large request's or reply's buffers go back to the system once it is done (memtrim).
    size = max(request.content_length or 0, resp.content_length or 0)
    memtrim.trim_soon(size)
    if audited or resp.status == 403:
        try:
            fields, params = _request_fields(request, note, secret_prompt)
            # Only a body the handler already read is cached; never read a refused (413) one again.
            if params is _NOT_YET:
                params = await _unparsed_params(request, resp, secret_prompt)
            record = _record(note, fields, start, resp, params)
        except Exception:  # auditing must never turn an answered request into a failure
            log.exception("audit_record_failed", path=request.path)
        else:
            await request.app[AUDIT].write(record)
    if size >= memtrim.TRIM_AFTER_BYTES:
        _let_go_of_body(request, note)
    return resp


def _let_go_of_body(request: web.Request, note: Note) -> None:
    """Drop what a request that is answered still holds of a large body: the bytes aiohttp's
    `read()` cached, and the note's parsed body and reply model. The keep-alive connection's
    handler holds its last request until the next one comes (a 30 MB write stayed in the daemon
    while the client's connection idled), and the memory trim that follows a large request can
    only return what nothing holds."""
    request._read_bytes = None
    note.body = note.reply = None


async def _unparsed_params(request: web.Request, resp: web.StreamResponse, secret_prompt: bool) -> Any:
    """The params of a request whose handler did not parse the body as a model."""
    if resp.status != 413 and request.body_exists and request.content.at_eof():
        raw = await request.read()
        if len(raw) > PARSE_IN_THREAD:  # e.g. a file write: keep the event loop free
            return await asyncio.to_thread(summarize_body, raw, secret_prompt)
        return summarize_body(raw, secret_prompt)
    if request.body_exists:
        return f"<body not read, {request.content_length} bytes>"
    return None


def _canonical(request: web.Request) -> str | None:
    route = request.match_info.route
    return route.resource.canonical if route.resource is not None else None


def _tool(method: str, canonical: str | None) -> str | None:
    op = op_for(method, canonical) if canonical else None
    return op.id if op is not None else None


_NOT_YET = object()  # params not summarised yet: the handler had not read the body


def _note_request(request: web.Request, note: Note, secret_prompt: bool) -> None:
    try:
        _request_fields(request, note, secret_prompt)
    except Exception:  # worked out again (and logged, if it fails again) when the line is written
        note.fields = None


def _request_fields(request: web.Request, note: Note, secret_prompt: bool) -> tuple[dict[str, Any], Any]:
    """The line's fields that describe the request, and its params (or `_NOT_YET`), kept in the
    note once the body's summary is known."""
    known = note.fields
    if known is not None and known[1] is not _NOT_YET:
        return known
    if known is not None:
        fields = known[0]
    else:
        canonical = _canonical(request)
        fields = {
            "request_id": note.request_id,
            "peer": _peer_fields(request),
            "method": request.method,
            "path": _clip_path(request.path),
            "route": canonical,
            "tool": _tool(request.method, canonical),
            "session_id": request.match_info.get("session_id"),
        }
    params: Any = _NOT_YET
    if fields["tool"] in SECRET_BODIES:
        params = "<a secret answer: never logged>"
    elif (parsed := note.body) is not None:
        params = summarize_parsed(parsed, secret_prompt)
    note.fields = (fields, params)
    return fields, params


def _record(
    note: Note,
    fields: dict[str, Any],
    start: float,
    resp: web.StreamResponse | None,
    params: Any,
) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ts": timestamp(),
        **fields,
        "params": None if params is _NOT_YET else params,
    }
    if resp is None:
        record.update(status=None, result="client_disconnected", decision="allowed")
    else:
        status = record["status"] = resp.status
        model = note.reply
        # The model is the reply only if the handler's reply went out (not an error made later).
        record.update(_reply_fields(resp, model if model is not None and status < 400 else None))
        record["decision"] = note.decision or ("refused" if status == 403 else "allowed")
        if note.policy:
            record["policy"] = note.policy
    typed = note.secret
    if isinstance(typed, dict):
        record["typed_secret"] = typed  # name, length, SHA-256 prefix, who answered: never the value
    record["ms"] = round((time.monotonic() - start) * 1000, 1)
    return record
