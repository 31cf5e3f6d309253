"""Shaping command replies for an agent: bounded first pages and the hints that name the next call (pure)."""

from __future__ import annotations

from sshkeep.common.models.sessions import Question
from sshkeep.common.terminal.keys import is_key_name
from sshkeep.common.terminal.lastwords import idle_logout

FIRST_REPLY_CHARS = 20_000
DEFAULT_PAGE_LINES = 1000

WAITING_HINT = (
    'The command waits for input: answer with send_keys (e.g. ["y", "Enter"]); send_keys returns its '
    "result. interrupt_command stops it."
)
RECONNECT_HINT = (
    "This is a new remote shell: the old one's working directory (now the login directory), "
    "variables, functions and background jobs are gone; cd back and set again what you need."
)


def reconnect_hint(wanted: str | None, now: str | None) -> str:
    """What a reconnect tells of the new remote shell: whether it is back in the old shell's
    working directory (`wanted`, when it was known; `now`, where the new shell is)."""
    if wanted is None:
        return RECONNECT_HINT
    gone = "variables, functions and background jobs of the old one are gone; set again what you need."
    if now == wanted:
        return f"This is a new remote shell, back in the old one's working directory {wanted}; {gone}"
    return (
        f"This is a new remote shell: it could not return to the old one's working directory {wanted} "
        f"(it is in {now or 'the login directory'}); {gone}"
    )


IDLE_LOGOUT_HINT = (
    "The remote shell logged itself out after TMOUT seconds without input. reconnect_session starts "
    "a new shell; there, `unset TMOUT` (or raise it, e.g. `TMOUT=3600`) if it may idle between commands "
    "(where TMOUT is readonly, set by /etc/profile, only the host's admin can change it)."
)


def disconnect_hint(words: str) -> str:
    """The next step for a session whose ssh ended, from what it said last."""
    if idle_logout(words):
        return IDLE_LOGOUT_HINT
    return "reconnect_session starts a fresh ssh in this session (a new remote shell); close_session ends it."


# Questions a login (before the remote shell runs) may ask.
LOGIN_QUESTIONS = frozenset({"password", "passphrase", "host_key", "otp", "secret", "confirm"})

# Quit keys of common full-screen programs (matched on the program's name).
_QUIT_KEYS: dict[str, list[str]] = {
    **{name: ["q"] for name in ("top", "htop", "atop", "less", "more", "man", "most", "git", "journalctl")},
    **{name: ["Escape", ":q!", "Enter"] for name in ("vi", "vim", "nvim", "view", "vimdiff")},
    "nano": ["C-x"],
    "pico": ["C-x"],
    "emacs": ["C-x", "C-c"],
    "mc": ["F10"],
    "watch": ["C-c"],
    "tmux": ["C-b", "d"],
    "screen": ["C-a", "d"],
}
_WRAPPERS = frozenset({"sudo", "env", "nice", "time", "exec", "command", "nohup", "doas"})


def program_of(command: str) -> str | None:
    """The program a command line runs in the foreground: its last pipeline stage's first word."""
    stage = command.strip().split("|")[-1].split(";")[-1].split("&&")[-1].strip()
    for word in stage.split():
        if "=" in word and not word.startswith("-"):
            continue  # VAR=value
        if word in _WRAPPERS or word.startswith("-"):
            continue
        return word.rsplit("/", 1)[-1]
    return None


def quit_keys(command: str) -> list[str] | None:
    prog = program_of(command) or ""
    keys = _QUIT_KEYS.get(prog)
    if keys is None and prog != "git":
        # A pager started by the command (git log, systemctl status, man) quits with q.
        first = command.strip().split()[0:1]
        keys = _QUIT_KEYS.get(first[0].rsplit("/", 1)[-1]) if first else None
    return keys


def question_hint(q: Question, sid: str, command: str = "") -> str:
    """The next step for one kind of question."""
    if q.kind in ("password", "passphrase", "secret"):
        return (
            f"It asks for a {q.kind}: answer_secret(session_id={sid!r}, ...) types a configured secret "
            f"without showing it, or a person answers with `sshkeep answer {sid}`. "
            'send_keys(["<secret>", "Enter"]) also works but puts it in your context.'
        )
    if q.kind == "otp":
        return 'It asks for a one-time code: get it from the person, then send_keys(["<code>", "Enter"]).'
    if q.kind == "confirm":
        return 'It asks yes/no: send_keys(["y", "Enter"]) or send_keys(["n", "Enter"]) returns the result.'
    if q.kind == "host_key":
        return (
            "ssh does not know this host key: check the fingerprint against the host's real key, then "
            'send_keys(["yes", "Enter"]) (or set StrictHostKeyChecking accept-new in ssh_options), or '
            "close_session."
        )
    if q.kind == "continuation":
        return (
            "The shell waits for the rest of an unfinished command (unclosed quote, bracket or here-doc): "
            'send_keys(["C-c"]) or interrupt_command cancels it; then send_command the corrected command.'
        )
    if q.kind == "fullscreen":
        keys = quit_keys(command)
        how = f"send_keys({keys!r})" if keys else "its quit key (often q) with send_keys"
        return (
            f"Full-screen program: quit with {how}; for plain output run it non-interactively "
            "(top -b -n 1, | cat)."
        )
    return 'It waits for input: send_keys(["<answer>", "Enter"]) (returns the result), or interrupt_command.'


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


def login_hint(q: Question, sid: str = "") -> str:
    if q.kind in ("host_key", "password", "passphrase", "otp"):
        return question_hint(q, sid)
    return 'Login asks for input: answer with send_keys([..., "Enter"]), or configure it in config.yml.'


def typed_command(keys: list[str]) -> str | None:
    """The command line `keys` type at a prompt: literal text items ending in Enter, else None."""
    items = [k for k in keys if k]
    if len(items) < 2 or items[-1] not in ("Enter", "KPEnter"):
        return None
    text = items[:-1]
    if any(is_key_name(k) and k != "Space" for k in text):
        return None
    line = "".join(" " if k == "Space" else k for k in text).strip()
    return line or None
