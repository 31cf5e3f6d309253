"""How commands are typed per shell, and how first replies are bounded (pure functions)."""

from __future__ import annotations

import shlex
import subprocess

import pytest

from sshkeep.common.terminal.commandline import NO_SHELL, POSIX_LINE_LIMIT, typed_text
from sshkeep.common.terminal.shellinit import START_FUNCTION
from sshkeep.daemon.sessions.replies import FIRST_REPLY_CHARS, first_page


def test_plain_commands_are_typed_as_they_are() -> None:
    assert typed_text("echo hi", "bash") == "echo hi"
    assert typed_text("echo é 漢", "zsh") == "echo é 漢"
    assert typed_text("echo hi", "dash") == f"{START_FUNCTION}; echo hi"


def test_control_bytes_become_a_printable_encoding() -> None:
    for shell in ("bash", "zsh", "dash", "ash"):
        for command in ("echo a\necho b", "printf 'x\t\ty\\n'", "echo '\x01\x1b[A\x7f'"):
            text = typed_text(command, shell)
            assert not any((c < " " and c != "\n") or c == "\x7f" for c in text), text
    assert typed_text("echo a\necho b", "zsh") == "eval $'echo a\\012echo b'"


def test_unintegrated_shell_gets_exactly_the_command() -> None:
    assert typed_text("print(1)\nprint(2)", NO_SHELL) == "print(1)\nprint(2)"


# Every byte 0x01-0x7f in one quoted argument, tabs in a heredoc, `$?` of the command before,
# a `%` and a backslash sequence printf must not touch, and non-ASCII text.
EVERY_BYTE = "".join(chr(i) for i in range(1, 128))
NASTY = [
    "printf '%s' " + shlex.quote(EVERY_BYTE) + " | od -An -c",
    "cat <<'EOF'\n\tall:\n\t\tmake -C x\nEOF",
    "printf 'x\t\ty\\n'",
    "(exit 12); echo $?; [ $? -eq 0 ] && echo zero",
    "printf '%s\\n' '100% \\c done' 'é 漢 🎉'",
    "echo 'a\x01b' | od -An -tx1",
]
LOCAL = {
    "bash": ["bash", "--norc", "--noprofile", "-c"],
    "zsh": ["zsh", "-f", "-c"],
    "dash": ["dash", "-c"],
    "ash": ["busybox", "ash", "-c"],
}
# What a prompt would have defined: the start marker call (here without its marker).
PRELUDE = {
    "bash": "",
    "zsh": "",
    "dash": START_FUNCTION + '() { __sk_s=$?; return "${1:-$__sk_s}"; }\n',
    "ash": START_FUNCTION + '() { __sk_s=$?; return "${1:-$__sk_s}"; }\n',
}


@pytest.mark.parametrize("shell", sorted(LOCAL))
@pytest.mark.parametrize("command", NASTY)
def test_typed_text_runs_like_the_command(shell: str, command: str) -> None:
    text = typed_text(command, shell)
    if shell in ("dash", "ash"):
        assert all(len(line.encode()) <= POSIX_LINE_LIMIT for line in text.split("\n"))
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
    want = subprocess.run([*LOCAL[shell], "(exit 5); " + command], capture_output=True, env=env, timeout=10)
    got = subprocess.run(
        [*LOCAL[shell], PRELUDE[shell] + "(exit 5)\n" + text], capture_output=True, env=env, timeout=10
    )
    assert (got.stdout, got.returncode) == (want.stdout, want.returncode)


@pytest.mark.parametrize("shell", ["dash", "ash"])
def test_long_posix_commands_are_built_from_short_lines(shell: str) -> None:
    payload = "x$y`z\\'\"  é " * 300  # quotes, $, backticks, backslashes, non-ASCII: ~4 KB
    command = f"printf '%s\\n' {shlex.quote(payload)}; echo end"
    text = typed_text(command, shell)
    assert all(len(line.encode()) <= POSIX_LINE_LIMIT for line in text.split("\n"))
    direct = subprocess.run(["dash", "-c", command], capture_output=True, text=True, check=True).stdout
    typed = subprocess.run(
        ["dash", "-c", PRELUDE["dash"] + text], capture_output=True, text=True, check=True
    ).stdout
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
