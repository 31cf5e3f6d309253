"""The tmux control client against a real tmux: replies reach the command line that asked, and
keys typed through it arrive exactly.

tmux answers each command of a `a ; b` line with its own %begin/%end block. Matching one block per
line handed the second block to whatever line was sent next, so e.g. the session monitor's
`list-panes` got an empty reply and marked every session disconnected.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sshkeep.common.errors import TmuxError
from sshkeep.common.terminal.commandline import typing_keys
from sshkeep.common.terminal.keys import keys_command
from sshkeep.daemon.sessions.tmux import Tmux
from tests.support import wait_until


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


@pytest.fixture
def tmux_pane(tmp_path: Path) -> Iterator[tuple[list[str], Path]]:
    """A private tmux server whose pane copies typed lines into a file."""
    sock = tmp_path / "tmux.sock"
    out = tmp_path / "typed.txt"
    base = ["tmux", "-S", str(sock), "-f", "/dev/null"]
    subprocess.run(
        [*base, "new-session", "-d", "-s", "k", "-x", "200", "-y", "50", "--", "sh", "-c", f"cat > {out}"],
        check=True,
        timeout=10,
    )
    try:
        yield base, out
    finally:
        subprocess.run([*base, "kill-server"], timeout=10, check=False)


def test_keys_round_trip_through_real_tmux(tmux_pane: tuple[list[str], Path]) -> None:
    base, out = tmux_pane
    pane = subprocess.run(
        [*base, "display-message", "-p", "-t", "k", "#{pane_id}"], capture_output=True, text=True, timeout=10
    ).stdout.strip()
    items = [
        "it's $HOME",
        " a;b \\; ",
        '"q" #{pane_id} ~',
        "Enter",
        "line2",
        "Tab",
        "x",
        "Space",
        "C-d",
        "Enter",
    ]
    # The daemon writes this line to its control-mode client: do the same.
    line = keys_command(pane, items)
    subprocess.run([*base, "-C", "attach", "-t", "k"], input=line + "\n", text=True, timeout=10, check=True)
    expected = 'it\'s $HOME a;b \\; "q" #{pane_id} ~\nline2\tx \n'
    wait_until(lambda: out.exists() and out.read_text() == expected, f"the pane to receive {expected!r}")


def test_a_typed_command_reaches_the_pane_byte_for_byte(tmp_path: Path) -> None:
    """What `send_command` types (the line-emptying keys, the text, Enter: one literal send-keys)
    arrives in a raw pty as exactly those bytes, whatever the text holds."""
    sock, out = tmp_path / "tmux.sock", tmp_path / "raw.bin"
    base = ["tmux", "-S", str(sock), "-f", "/dev/null"]
    reader = f"stty raw -echo; exec cat > {out}"
    subprocess.run([*base, "new-session", "-d", "-s", "r", "--", "sh", "-c", reader], check=True, timeout=10)
    try:
        shown = [*base, "display-message", "-p", "-t", "r", "#{pane_id}"]
        pane = subprocess.run(shown, capture_output=True, text=True, timeout=10).stdout.strip()
        wait_until(out.exists, "the raw reader to start")
        text = "echo 'it''s' \"$HOME\" #{pane_id} ~ a;b \\; \t\x1b[A é"
        expected = b""
        for shell, clear in (("bash", b"\x05\x15"), ("dash", b"\x15"), (None, b"")):
            line = typing_keys(pane, shell, text)
            control = [*base, "-C", "attach", "-t", "r"]
            subprocess.run(control, input=line + "\n", text=True, timeout=10, check=True)
            expected += clear + text.encode() + b"\r"
        wait_until(lambda: out.read_bytes() == expected, f"the pane to receive {expected!r}")
    finally:
        subprocess.run([*base, "kill-server"], timeout=10, check=False)
