"""Shaping command replies for an agent: bounded first pages and the hints that name the next call (pure)."""

from __future__ import annotations

from sshkeep.common.models.sessions import Question

FIRST_REPLY_CHARS = 20_000
DEFAULT_PAGE_LINES = 1000

WAITING_HINT = (
    'The command waits for input: answer with send_keys (e.g. ["y", "Enter"]), then follow it with '
    "get_command(wait=...); or stop it with interrupt_command."
)
UNINTEGRATED_HINT = (
    "This login shell is not sh-compatible, so sshkeep could not install its markers: a command counts "
    "as done after 1 s of quiet output, and exit codes are unknown (exit_code is null)."
)


def first_page(lines: list[str]) -> tuple[list[str], int | None, str | None]:
    """Bound the first reply: keep head and tail, say what was cut and how to page."""
    total_chars = sum(len(x) + 1 for x in lines)
    if total_chars <= FIRST_REPLY_CHARS:
        return lines, None, None
    return _cut(lines, lines, len(lines))


# A first page holds at most this many lines of each end (each line costs at least one char).
FIRST_PAGE_CANDIDATES = FIRST_REPLY_CHARS // 2


def first_page_of(head: list[str], tail: list[str], total: int) -> tuple[list[str], int | None, str | None]:
    """`first_page` for output of `total` lines of which only the first and last
    FIRST_PAGE_CANDIDATES lines were rendered (`head`, `tail`)."""
    if total <= 2 * FIRST_PAGE_CANDIDATES:
        # Small enough that head and tail hold every line (tail may repeat head's end).
        lines = head + tail[len(tail) - (total - len(head)) :] if total > len(head) else head[:total]
        return first_page(lines)
    return _cut(head, tail, total)


def _cut(head_from: list[str], tail_from: list[str], total: int) -> tuple[list[str], int, str]:
    head: list[str] = []
    used = 0
    for line in head_from:
        if used + len(line) + 1 > FIRST_REPLY_CHARS // 2:
            break
        head.append(line[: FIRST_REPLY_CHARS // 2])
        used += len(line) + 1
    tail: list[str] = []
    used = 0
    room = total - len(head)  # tail lines never repeat head lines
    for line in reversed(tail_from[len(tail_from) - min(room, len(tail_from)) :]):
        if used + len(line) + 1 > FIRST_REPLY_CHARS // 2:
            break
        tail.append(line)
        used += len(line) + 1
    tail.reverse()
    cut_from = len(head)
    cut_to = total - len(tail)
    note = (
        f"[... {cut_to - cut_from} lines cut (lines {cut_from}..{cut_to - 1} of {total}); "
        f"page with get_command(offset={cut_from}) ...]"
    )
    return [*head, note, *tail], cut_from, note


def login_hint(q: Question) -> str:
    if q.kind == "host_key":
        return (
            "ssh does not know this host key: check the fingerprint, then accept with "
            'send_keys(["yes", "Enter"]) (or set StrictHostKeyChecking accept-new in ssh_options), '
            "or close_session."
        )
    return 'Login asks for input: answer with send_keys([..., "Enter"]), or configure it in config.yml.'
