"""sshkeep.common.terminal.foreground.replaces_shell: which command lines replace the shell."""

from __future__ import annotations

import pytest

from sshkeep.common.terminal.foreground import replaces_shell


@pytest.mark.parametrize(
    "command",
    [
        "exec bash",
        "exec -l zsh",
        "exec -a login-sh sh",
        "cd /srv && exec sh",
        "x=$(exec date); exec zsh",
        "if true; then exec bash; fi",
        "{ exec bash; }",
        "exec fish",
        "exec 'bash'",
    ],
)
def test_replaces(command: str) -> None:
    assert replaces_shell(command)


@pytest.mark.parametrize(
    "command",
    [
        "exec >log",
        "exec 3<file",
        "exec 2>&1",
        "exec",
        "echo exec bash",
        "(exec bash)",
        "echo $(exec date)",
        "bash -c 'exec zsh'",
        "x='unterminated exec bash",
    ],
)
def test_keeps_the_shell(command: str) -> None:
    assert not replaces_shell(command)
