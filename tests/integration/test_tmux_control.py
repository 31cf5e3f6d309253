"""The tmux control client against a real tmux: replies reach the command line that asked.

tmux answers each command of a `a ; b` line with its own %begin/%end block. Matching one block per
line handed the second block to whatever line was sent next, so e.g. the session monitor's
`list-panes` got an empty reply and marked every session disconnected.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sshkeep.common.errors import TmuxError
from sshkeep.daemon.sessions.tmux import Tmux, count_commands


def test_count_commands_follows_tmux_quoting() -> None:
    assert count_commands("list-sessions") == 1
    assert count_commands("send-keys -t %1 -l -- 'a' ; send-keys -t %1 Enter") == 2
    assert count_commands("display-message -p a;display-message -p b") == 2
    assert count_commands("display-message -p 'x ; y' ; display-message -p \"c;d\"") == 2
    assert count_commands("display-message -p 'it'\"'\"'s; fine'") == 1
    assert count_commands("display-message -p e\\;f") == 1
    assert count_commands("list-sessions ;") == 1


@pytest.fixture
async def tmux() -> AsyncIterator[Tmux]:
    assert shutil.which("tmux"), "tmux is not installed (bash tests/run.sh installs it)"
    tmp = Path(tempfile.mkdtemp(prefix="sk-tmux-", dir="/tmp"))
    t = Tmux(["-S", str(tmp / "tmux.sock")], tmp / "tmux.conf")
    try:
        await t.ensure_server()
        yield t
    finally:
        await t.kill_server()
        shutil.rmtree(tmp, ignore_errors=True)


async def test_multi_command_lines_get_all_their_replies(tmux: Tmux) -> None:
    assert await tmux.command("display-message -p a ; display-message -p b") == ["a", "b"]
    assert await tmux.command("display-message -p 'c;d' ; display-message -p e") == ["c;d", "e"]


async def test_concurrent_lines_never_swap_replies(tmux: Tmux) -> None:
    async def pair(i: int) -> list[str]:
        return await tmux.command(f"display-message -p a{i} ; display-message -p b{i}")

    async def single(i: int) -> list[str]:
        return await tmux.command(f"display-message -p s{i}")

    jobs = [pair(i) if i % 2 else single(i) for i in range(200)]
    results = await asyncio.gather(*jobs)
    for i, got in enumerate(results):
        assert got == ([f"a{i}", f"b{i}"] if i % 2 else [f"s{i}"]), (i, got)


async def test_a_failing_command_ends_its_line_only(tmux: Tmux) -> None:
    # tmux skips the rest of a line after a failed command and sends one %error block.
    with pytest.raises(TmuxError, match="can't find pane"):
        await tmux.command("send-keys -t %99999 x ; display-message -p never")
    with pytest.raises(TmuxError, match="unknown command"):
        await tmux.command("display-message -p a ; no-such-command")
    assert await tmux.command("display-message -p after") == ["after"]
