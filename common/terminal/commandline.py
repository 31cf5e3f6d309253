"""How a command is typed into each kind of shell so it runs as one unit with a start marker (pure)."""

from __future__ import annotations

import shlex

from sshkeep.common.terminal.shellinit import SHELLS_WITH_HOOKS, START_FUNCTION

# Shell kind recorded for a login shell the setup lines could not integrate.
NO_SHELL = "none"
# Longer input goes through a tmux paste buffer rather than send-keys.
PASTE_THRESHOLD = 4096
POSIX_LINE_LIMIT = 900


def typed_text(command: str, shell: str | None) -> str:
    """What to type for `command` so the shell runs it as one unit and marks its start."""
    if shell == NO_SHELL:
        return command  # typed exactly as given: we cannot know this shell's syntax
    if shell in SHELLS_WITH_HOOKS:
        return "{\n" + command + "\n}" if "\n" in command else command
    if any(len(line.encode()) > POSIX_LINE_LIMIT for line in command.split("\n")):
        # dash reads through the tty's canonical mode (lines cut at 4095 bytes) and busybox ash's
        # editor cuts at 1024: build the command in a variable from short quoted lines, then eval.
        pieces = [command[i : i + 200] for i in range(0, len(command), 200)]
        lines = [f"__sk_x={shlex.quote(pieces[0])}"]
        lines += [f'__sk_x="$__sk_x"{shlex.quote(p)}' for p in pieces[1:]]
        return f"{START_FUNCTION}; {{\n" + "\n".join(lines) + '\neval "$__sk_x"\n}'
    if "\n" in command:
        command = "{\n" + command + "\n}"
    return f"{START_FUNCTION}; {command}"
