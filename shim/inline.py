"""How much content one MCP reply carries inline, and what happens to the rest (pure).

The MCP SDK's stdio client reads a reply as one JSON-RPC line, joining and splitting the line so
far for every 64 KiB chunk: its time grows with the square of the line's length (a 10 MB file
inline takes ~7x its HTTP read). A model cannot use megabytes inline either. So a reply carries
at most ~256 KiB of content:

- read_remote_file: a file (or range) over `INLINE_FILE_BYTES` is not sent inline. A whole-file
  read saves the whole file to a local file (the same streamed copy as `local_path`) and replies
  with its path, size and sha256 and the first `HEAD_BYTES` inline; a range read returns the first
  `INLINE_FILE_BYTES` of the range with `next_offset`.
- command and job output pages (get_command or get_job with a large `limit`, long lines): a page over
  `INLINE_OUTPUT_CHARS` is cut at a line end (a single longer line is cut inside), with
  `next_offset` and a hint naming `local_path` for the whole output. The output goes in both the
  text and the structured result, hence half the file bound.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from typing import TypeVar

from sshkeep.common.models.base import MAIN_TERMINAL
from sshkeep.common.models.files import ReadFileResult
from sshkeep.common.models.jobs import JobResult
from sshkeep.common.models.sessions import CommandResult

INLINE_FILE_BYTES = 256 * 1024
PAGE_LIMIT_NOTE = "This page stops at the"  # how a capped range's hint starts (render_read looks for it)
INLINE_OUTPUT_CHARS = 128 * 1024
HEAD_BYTES = 4096
# base64 goes in whole 3-byte groups: the head of a binary file is 3072 bytes (4096 characters).
HEAD_BYTES_BASE64 = 3072

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MORE_OUTPUT = re.compile(r"^More output: get_(command|job)\([^)]*\)\.\s*")


def spill_name(session_id: str, resolved_path: str) -> str:
    """The local file (relative: under the first local root) a large read is saved to: one per
    session and remote file, so reading it again replaces the copy instead of adding one."""
    base = _UNSAFE.sub("_", posixpath.basename(resolved_path.rstrip("/")))[-80:] or "file"
    tag = hashlib.sha256(resolved_path.encode("utf-8", errors="surrogateescape")).hexdigest()[:8]
    return f"{session_id}-{tag}-{base}"


def head_of(page: ReadFileResult) -> tuple[str, int]:
    """(content, bytes) of the first bytes of `page` (a read from offset 0): up to HEAD_BYTES,
    ending at a line end when one falls inside, never inside a character."""
    if page.encoding == "base64":
        text = page.content[: HEAD_BYTES_BASE64 // 3 * 4]
        return text, min(page.length, HEAD_BYTES_BASE64)
    data = page.content[:HEAD_BYTES].encode("utf-8", errors="surrogateescape")[:HEAD_BYTES]
    text = data.decode("utf-8", errors="ignore")  # drops only a character cut at the end
    if len(data) >= HEAD_BYTES:  # more follows: stop at the last complete line, if any
        end = text.rfind("\n")
        if end > 0:
            text = text[: end + 1]
    return text, len(text.encode("utf-8", errors="surrogateescape"))


def spilled(page: ReadFileResult, copy: ReadFileResult) -> ReadFileResult:
    """The reply for a file saved to a local path: the copy's path, size and sha256, the head of
    `page` inline, and where the rest is."""
    content, length = head_of(page)
    hint = (
        f"Over the {INLINE_FILE_BYTES}-byte inline limit of MCP replies, the whole file was saved to "
        f"{copy.local_path}: read the rest there, or read_remote_file(offset={length}, "
        f"limit<={INLINE_FILE_BYTES}) for the next page inline."
    )
    return ReadFileResult(
        session_id=copy.session_id,
        path=copy.path,
        resolved_path=copy.resolved_path,
        encoding=page.encoding,
        content=content,
        local_path=copy.local_path,
        offset=0,
        length=length,
        size=copy.size,
        sha256=copy.sha256,
        truncated=True,
        next_offset=length,
        mode=copy.mode,
        mtime=copy.mtime,
        hint=hint,
    )


def capped_range(page: ReadFileResult, failed: str | None = None) -> ReadFileResult:
    """A page read with INLINE_FILE_BYTES as its limit, for a caller who asked for more (`failed`:
    why the whole file could not be saved locally): when it was cut, the hint says so."""
    if not page.truncated:
        return page
    out = page.model_copy()
    whole = (
        f"saving the whole file to a local file failed ({failed})"
        if failed
        else "a read from offset 0 without limit (or with local_path) saves the whole file to a local file"
    )
    out.hint = (
        f"{PAGE_LIMIT_NOTE} {INLINE_FILE_BYTES}-byte inline limit of MCP replies: "
        f"read_remote_file(offset={page.next_offset}) for the next page; {whole}."
    )
    return out


def bounded_command(res: CommandResult) -> CommandResult:
    """`res` with its output cut to INLINE_OUTPUT_CHARS (at a line end when possible), the page's
    next_offset moved to the first line left out, and a hint naming the next page and local_path."""
    terminal = f", terminal={res.terminal!r}" if res.terminal != MAIN_TERMINAL else ""
    at = f"get_command(session_id={res.session_id!r}{terminal}, command_id={res.command_id!r}"
    return _bounded(res, at + ", offset={})", at + ", local_path=...)")


def bounded_job(res: JobResult) -> JobResult:
    """`bounded_command` for a job's page of output (get_job pages it; its terminal's command
    record saves it whole)."""
    whole = (
        f"get_command(session_id={res.session_id!r}, terminal={res.terminal!r}, "
        f"command_id={res.command_id!r}, local_path=...)"
        if res.command_id
        else None
    )
    return _bounded(res, f"get_job(job_id={res.job_id!r}, offset={{}})", whole)


P = TypeVar("P", CommandResult, JobResult)


def _bounded(res: P, next_call: str, whole_call: str | None) -> P:
    if len(res.output) <= INLINE_OUTPUT_CHARS:
        return res
    lines = res.output.split("\n")
    kept: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) > INLINE_OUTPUT_CHARS:
            break
        kept.append(line)
        used += len(line) + 1
    cut_line: tuple[int, int] | None = None
    if not kept:  # one line longer than the whole budget: its start, and the rest via local_path
        cut_line = (len(lines[0]), res.offset)
        kept = [lines[0][:INLINE_OUTPUT_CHARS]]
    nxt = res.offset + len(kept)
    if cut_line is not None:
        what = f"line {cut_line[1]} was cut after {INLINE_OUTPUT_CHARS} of its {cut_line[0]} characters"
    else:
        what = f"this page holds lines {res.offset}..{nxt - 1}"
    note = f"Output over the {INLINE_OUTPUT_CHARS}-character inline limit of MCP replies: {what}"
    more = len(kept) < len(lines) or res.next_offset is not None
    if more:
        note += f"; {next_call.format(nxt)} for the next page"
    note += f"; {whole_call} saves the whole output to a local file." if whole_call else "."
    out = res.model_copy()
    out.output = "\n".join(kept)
    out.truncated = note
    out.next_offset = nxt if more else None
    out.has_more = more
    earlier = _MORE_OUTPUT.sub("", res.hint or "")  # the daemon's next page is no longer this one's
    out.hint = f"{note} {earlier}" if earlier else note
    return out
