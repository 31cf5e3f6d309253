"""Guarding the foreground (pure): commands that never end, and background jobs a command leaves.

A command that runs until stopped (`tail -f`, a dev server, a watcher) blocks the terminal and the
agent's `send_command`; such commands belong in a job (`start_job`). A command line with `cmd &`
leaves processes behind in the terminal's shell, which the agent should know about.
"""

from __future__ import annotations

import re
import shlex

# (pattern over the whole command line, what it is). Conservative: a false "runs forever" hint is
# only a hint, but it should be rare.
_ENDLESS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), what)
    for p, what in (
        (r"\btail\b[^|;&]*\s-[a-zA-Z]*[fF]", "`tail -f` follows a file until stopped"),
        (r"\bjournalctl\b[^|;&]*\s(-[a-zA-Z]*f|--follow\b)", "`journalctl -f` follows the journal"),
        (r"\b(docker|podman|kubectl)\b[^|;&]*\blogs\b[^|;&]*\s(-f|--follow)\b", "following container logs"),
        (r"\bdmesg\b[^|;&]*\s(-w|--follow)\b", "`dmesg -w` follows the kernel log"),
        (r"\bwatch\s", "`watch` repeats until stopped"),
        (r"\bhttp\.server\b|\bSimpleHTTPServer\b", "a web server runs until stopped"),
        (r"\b(npm|pnpm|yarn|bun)\s+(run\s+)?(dev|start|serve|watch)\b", "a dev server runs until stopped"),
        (
            r"\b(uvicorn|gunicorn|hypercorn|flask\s+run|rails\s+s(erver)?|manage\.py\s+runserver)\b",
            "a web server runs until stopped",
        ),
        (r"\b(vite|webpack-dev-server|next\s+dev|nodemon|ng\s+serve)\b", "a dev server runs until stopped"),
        (r"\s--watch\b", "a watcher runs until stopped"),
        (r"\bsleep\s+infinity\b", "`sleep infinity` never ends"),
        (r"\b(nc|ncat|socat)\b[^|;&]*\s-[a-zA-Z]*l", "a listener runs until stopped"),
        (r"^\s*(top|htop|btop)\b", "a monitor runs until stopped"),
        (r"\bping\b(?![^|;&]*\s-c\s*\d)", "`ping` without -c runs until stopped"),
    )
)

# The job-control line an interactive shell prints when `cmd &` starts: "[1] 12345".
_JOB_STARTED = re.compile(r"^\[(\d+)\]\s+(\d+)\s*$")


def endless_reason(command: str) -> str | None:
    """Why `command` looks like it runs until stopped, or None."""
    for pattern, what in _ENDLESS:
        if pattern.search(command):
            return what
    return None


def has_background_ampersand(command: str) -> bool:
    """Whether the command line runs something with a lone `&` (not `&&`, `>&`, `&>`, quoted or
    in a comment)."""
    if "&" not in command:
        return False
    quote = ""
    i, n = 0, len(command)
    while i < n:
        ch = command[i]
        prev = command[i - 1] if i else ""
        nxt = command[i + 1] if i + 1 < n else ""
        if quote:
            if ch == quote and (quote == "'" or prev != "\\"):
                quote = ""
        elif ch == "\\":
            i += 1  # the next character is escaped
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (not prev or prev.isspace()):
            nl = command.find("\n", i)
            i = n if nl == -1 else nl
            continue
        elif ch == "&":
            if nxt == "&":
                i += 2
                continue
            if prev not in "><|" and nxt != ">":
                return True
        i += 1
    return False


def started_jobs(lines: list[str]) -> list[int]:
    """The pids of background jobs a shell reported starting ("[1] 12345") in a command's output."""
    return [int(m.group(2)) for line in lines if (m := _JOB_STARTED.match(line))]


# Where a command word can start: the line's start or after a separator or an opening group.
_COMMAND_START = frozenset({";", "&&", "||", "|", "&", "(", "{", "then", "do", "else"})
_REDIRECT = re.compile(r"^\d*(?:[<>]|&>)")
_PUNCTUATION = frozenset(";&|(){}")


def replaces_shell(command: str) -> bool:
    """The command line runs `exec PROGRAM`, which replaces the shell (`exec bash`, `exec -l zsh`,
    `cd /srv && exec sh`); `exec >log` and `exec 3<file` only redirect and keep it, and in a
    subshell (`(exec bash)`, `$(exec …)`) it replaces the subshell only."""
    try:
        lexer = shlex.shlex(command, posix=True, punctuation_chars="".join(sorted(_PUNCTUATION)))
        lexer.whitespace_split = True
        words = list(lexer)
    except ValueError:
        return False
    depth = 0  # inside ( … ) exec replaces a subshell only
    for i, word in enumerate(words):
        depth += word.count("(") - word.count(")") if set(word) <= _PUNCTUATION else 0
        if word != "exec" or depth > 0 or (i > 0 and not _starts_command(words[i - 1])):
            continue
        rest = words[i + 1 :]
        while rest and rest[0].startswith("-"):
            rest = rest[2:] if rest[0] == "-a" else rest[1:]  # -a NAME, -c, -l
        if rest and not _starts_command(rest[0]) and not _REDIRECT.match(rest[0]):
            return True
    return False


def _starts_command(word: str) -> bool:
    """A command word may follow `word` (a separator, an opening group, a keyword)."""
    if word in _COMMAND_START:
        return True
    return set(word) <= _PUNCTUATION and word[-1] in ";&|({"
