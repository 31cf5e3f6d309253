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
    head: list[str] = []
    used = 0
    for line in lines:
        if used + len(line) + 1 > FIRST_REPLY_CHARS // 2:
            break
        head.append(line[: FIRST_REPLY_CHARS // 2])
        used += len(line) + 1
    tail: list[str] = []
    used = 0
    for line in reversed(lines[len(head) :]):
        if used + len(line) + 1 > FIRST_REPLY_CHARS // 2:
            break
        tail.append(line)
        used += len(line) + 1
    tail.reverse()
    cut_from = len(head)
    cut_to = len(lines) - len(tail)
    note = (
        f"[... {cut_to - cut_from} lines cut (lines {cut_from}..{cut_to - 1} of {len(lines)}); "
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
