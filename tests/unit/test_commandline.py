"""How commands are typed per shell, and how first replies are bounded (pure functions)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from sshkeep.common.terminal.commandline import NO_SHELL, POSIX_LINE_LIMIT, typed_text
from sshkeep.common.terminal.shellinit import START_FUNCTION
from sshkeep.daemon.sessions.replies import FIRST_REPLY_CHARS, first_page


def test_hooked_shells_get_the_command_as_is() -> None:
    assert typed_text("echo hi", "bash") == "echo hi"
    assert typed_text("echo a\necho b", "zsh") == "{\necho a\necho b\n}"


def test_posix_shells_get_the_start_marker_call() -> None:
    assert typed_text("echo hi", "dash") == f"{START_FUNCTION}; echo hi"
    assert typed_text("a\nb", "ash") == f"{START_FUNCTION}; {{\na\nb\n}}"


def test_unintegrated_shell_gets_exactly_the_command() -> None:
    assert typed_text("print(1)\nprint(2)", NO_SHELL) == "print(1)\nprint(2)"


@pytest.mark.parametrize("shell", ["dash", "ash"])
def test_long_posix_commands_are_built_from_short_lines(shell: str) -> None:
    payload = "x$y`z\\'\"  é " * 300  # quotes, $, backticks, backslashes, non-ASCII: ~4 KB
    command = f"printf '%s\\n' {shlex.quote(payload)}; echo end"
    text = typed_text(command, shell)
    assert all(len(line.encode()) <= POSIX_LINE_LIMIT for line in text.split("\n"))
    # Running the typed text (minus the marker call) in dash gives what the command alone gives.
    body = text.removeprefix(f"{START_FUNCTION}; ")
    direct = subprocess.run(["dash", "-c", command], capture_output=True, text=True, check=True).stdout
    typed = subprocess.run(["dash", "-c", body], capture_output=True, text=True, check=True).stdout
    assert typed == direct == payload + "\nend\n"


def test_short_output_is_not_cut() -> None:
    lines = [f"line {i}" for i in range(100)]
    assert first_page(lines) == (lines, None, None)


def test_long_output_keeps_head_and_tail_and_says_how_to_page() -> None:
    lines = [f"{i:06d}" for i in range(100_000)]
    page, next_offset, note = first_page(lines)
    assert sum(len(x) + 1 for x in page) <= FIRST_REPLY_CHARS + 200
    assert page[0] == "000000" and page[-1] == "099999"
    assert note is not None and note in page
    assert next_offset is not None and page[next_offset] == note
    assert f"offset={next_offset}" in note
