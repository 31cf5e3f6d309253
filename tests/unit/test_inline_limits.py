"""The MCP inline limits, pure parts: a large file's local copy and head, capped ranges, and
command output pages cut to the limit with the next page named."""

from __future__ import annotations

import base64

from sshkeep.common.models.files import ReadFileResult
from sshkeep.common.models.jobs import JobResult
from sshkeep.common.models.sessions import CommandResult
from sshkeep.shim import inline
from sshkeep.shim.inline import HEAD_BYTES, INLINE_FILE_BYTES, INLINE_OUTPUT_CHARS
from sshkeep.shim.tools_files import render_read


def page(content: str, size: int, *, encoding: str = "text", length: int | None = None) -> ReadFileResult:
    n = len(content.encode()) if length is None else length
    return ReadFileResult.model_validate(
        {
            "session_id": "bash-1",
            "path": "big.log",
            "resolved_path": "/home/u/big.log",
            "encoding": encoding,
            "content": content,
            "offset": 0,
            "length": n,
            "size": size,
            "truncated": n < size,
            "next_offset": n if n < size else None,
            "mode": "0644",
        }
    )


def copy(size: int) -> ReadFileResult:
    return ReadFileResult.model_validate(
        {
            "session_id": "bash-1",
            "path": "big.log",
            "resolved_path": "/home/u/big.log",
            "encoding": "text",
            "local_path": "/state/downloads/bash-1-x-big.log",
            "offset": 0,
            "length": size,
            "size": size,
            "sha256": "ab" * 32,
            "truncated": False,
            "mode": "0644",
            "mtime": 1,
        }
    )


def test_spill_names_are_one_per_session_and_file_and_safe() -> None:
    a = inline.spill_name("bash-1", "/var/log/app.log")
    assert a == inline.spill_name("bash-1", "/var/log/app.log") and a.endswith("-app.log")
    assert a != inline.spill_name("bash-1", "/srv/app.log") != inline.spill_name("bash-2", "/var/log/app.log")
    odd = inline.spill_name("bash-1", "/tmp/we ird/$(x) ü.txt")
    assert "/" not in odd and " " not in odd and "$" not in odd and odd.endswith(".txt")
    assert inline.spill_name("bash-1", "/").startswith("bash-1-")


def test_head_ends_at_a_line_end_and_never_inside_a_character() -> None:
    line = "ünïcødé line ✓ 日本\n"
    text = line * 2000
    content, n = inline.head_of(page(text[:INLINE_FILE_BYTES], len(text.encode())))
    assert content.endswith("\n") and text.startswith(content)
    assert n == len(content.encode()) <= HEAD_BYTES and n > HEAD_BYTES - len(line.encode())
    # One long line: cut at the byte limit, before a character that does not fit whole.
    long = "日" * 5000
    content, n = inline.head_of(page(long, len(long.encode()) + 10**6))
    assert long.startswith(content) and n == len(content.encode()) and HEAD_BYTES - 3 < n <= HEAD_BYTES
    # A short file's head is all of it.
    assert inline.head_of(page("a\nb", 3)) == ("a\nb", 3)
    raw = bytes(range(256)) * 100
    b64 = base64.b64encode(raw).decode()
    content, n = inline.head_of(page(b64, 10**6, encoding="base64", length=len(raw)))
    assert base64.b64decode(content) == raw[:n] and n == 3072


def test_a_large_file_reply_names_the_local_copy_and_the_next_page() -> None:
    text = "".join(f"line {i}\n" for i in range(100_000))
    res = inline.spilled(page(text[:INLINE_FILE_BYTES], len(text)), copy(len(text)))
    assert res.local_path == "/state/downloads/bash-1-x-big.log" and res.size == len(text)
    assert res.sha256 == "ab" * 32 and res.truncated and res.next_offset == res.length
    assert text.startswith(res.content) and res.length == len(res.content) <= HEAD_BYTES
    shown = render_read(res)
    head, _, body = shown.partition("\n")
    assert body == res.content
    assert "/state/downloads/bash-1-x-big.log" in head and f"first {res.length} bytes" in head
    assert f"offset={res.length}" in head and str(INLINE_FILE_BYTES) in head


def test_a_range_over_the_limit_says_where_the_rest_is() -> None:
    p = page("x" * INLINE_FILE_BYTES, 10 * INLINE_FILE_BYTES)
    res = inline.capped_range(p)
    assert res.hint and f"offset={INLINE_FILE_BYTES}" in res.hint and "inline limit" in res.hint
    assert f"offset={INLINE_FILE_BYTES}" in render_read(res).partition("\n")[0]
    failed = inline.capped_range(p, failed="[forbidden] outside the roots")
    assert failed.hint and "[forbidden] outside the roots" in failed.hint
    small = page("abc", 3)
    assert inline.capped_range(small) is small


def result(
    output: str, *, offset: int = 0, total: int | None = None, hint: str | None = None
) -> CommandResult:
    n = output.count("\n") + 1
    total = offset + n if total is None else total
    nxt = offset + n if offset + n < total else None
    return CommandResult.model_validate(
        {
            "session_id": "bash-1",
            "command_id": "c3",
            "status": "completed",
            "exit_code": 0,
            "output": output,
            "offset": offset,
            "next_offset": nxt,
            "has_more": nxt is not None,
            "total_lines": total,
            "hint": hint,
        }
    )


def test_small_pages_pass_unchanged() -> None:
    r = result("a\nb\nc")
    assert inline.bounded_command(r) is r


def test_a_large_page_is_cut_at_a_line_end_with_the_next_offset() -> None:
    lines = [f"{i:07d}" for i in range(100_000)]
    r = result(
        "\n".join(lines),
        offset=500,
        total=200_000,
        hint="More output: get_command(bash-1, command_id='c3', offset=100500). Lost 10 bytes.",
    )
    out = inline.bounded_command(r)
    kept = out.output.split("\n")
    assert len(out.output) <= INLINE_OUTPUT_CHARS and kept == lines[: len(kept)]
    assert out.offset == 500 and out.next_offset == 500 + len(kept) and out.has_more
    assert out.hint and f"offset={500 + len(kept)}" in out.hint and "local_path" in out.hint
    assert "offset=100500" not in out.hint and "Lost 10 bytes." in out.hint  # other hints stay
    assert out.truncated and "inline limit" in out.truncated
    assert r.output == "\n".join(lines)  # the daemon's reply is not changed in place


def test_one_line_over_the_limit_is_cut_inside_and_points_at_local_path() -> None:
    r = result("y" * (3 * INLINE_OUTPUT_CHARS))
    out = inline.bounded_command(r)
    assert out.output == "y" * INLINE_OUTPUT_CHARS
    assert out.next_offset is None and not out.has_more  # it was the only line
    assert (
        out.hint and "local_path" in out.hint and f"of its {3 * INLINE_OUTPUT_CHARS} characters" in out.hint
    )
    two = inline.bounded_command(result("z" * (2 * INLINE_OUTPUT_CHARS) + "\nnext"))
    assert two.next_offset == 1 and two.has_more


def test_a_large_job_page_names_get_job_and_the_terminal_record() -> None:
    job = JobResult.model_validate(
        {
            "job_id": "j-abc123",
            "session_id": "bash-1",
            "terminal": "j-abc123",
            "name": "build",
            "command": "make",
            "durable": False,
            "status": "running",
            "started_at": 1.0,
            "command_id": "c1",
            "output": "\n".join("w" * 999 for _ in range(1000)),
            "offset": 0,
            "next_offset": 1000,
            "has_more": True,
            "total_lines": 5000,
            "hint": "More output: get_job(job_id='j-abc123', offset=1000).",
        }
    )
    out = inline.bounded_job(job)
    kept = out.output.split("\n")
    assert len(out.output) <= INLINE_OUTPUT_CHARS and out.next_offset == len(kept) and out.has_more
    assert out.hint and f"get_job(job_id='j-abc123', offset={len(kept)})" in out.hint
    assert (
        "terminal='j-abc123', command_id='c1', local_path=...)" in out.hint and "offset=1000" not in out.hint
    )
    small = job.model_copy(update={"output": "ok"})
    assert inline.bounded_job(small) is small
