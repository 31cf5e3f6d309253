"""The tmux control client's reply matching, against a stand-in that speaks control mode's framing."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from pathlib import Path

import pytest

from sshkeep.common.errors import TmuxCommandFailed, TmuxError
from sshkeep.daemon.sessions.tmux import ControlClient

# Answers each `;`-separated command of a line with one block; `fail` gets %error (and ends the
# line, as tmux does); `big N` answers N bytes on one line, written in small pieces; `quit` exits.
STAND_IN = textwrap.dedent(
    """
    import os, sys
    out = sys.stdout.buffer
    out.write(b"%begin 1 0 0\\n%end 1 0 0\\n%session-changed $0 ctl\\n"); out.flush()
    n = 1
    for line in sys.stdin:
        for cmd in line.strip().split(" ; "):
            n += 1
            if cmd == "quit":
                os._exit(0)
            if cmd == "fail":
                out.write(b"%%begin 1 %d 1\\nno such thing\\n%%error 1 %d 1\\n" % (n, n)); break
            body = cmd.encode()
            if cmd.startswith("big "):
                body = b"x" * int(cmd[4:])
            out.write(b"%%begin 1 %d 1\\n" % n); out.flush()
            for i in range(0, len(body), 1000):
                out.write(body[i : i + 1000]); out.flush()
            out.write(b"\\n%%end 1 %d 1\\n%%output %%1 noise\\n" % n)
        out.flush()
    """
)


@pytest.fixture
def stand_in(tmp_path: Path) -> list[str]:
    script = tmp_path / "stand_in.py"
    script.write_text(STAND_IN)
    return [sys.executable, "-u", str(script)]


def test_replies_reach_their_lines_in_order(stand_in: list[str]) -> None:
    async def main() -> None:
        client = ControlClient(stand_in)
        await client.start()
        assert client.alive
        replies = await asyncio.gather(*(client.command(f"echo {i} ; second {i}") for i in range(20)))
        assert replies == [[f"echo {i}", f"second {i}"] for i in range(20)]
        with pytest.raises(TmuxCommandFailed, match="no such thing"):
            await client.command("fail ; never")
        assert await client.command("after") == ["after"]
        big = await client.command("big 300000")  # one line in many pieces
        assert big == ["x" * 300000]
        await client.close()

    asyncio.run(main())


def test_an_exited_client_fails_what_waits_and_is_not_alive(stand_in: list[str]) -> None:
    async def main() -> None:
        client = ControlClient(stand_in)
        await client.start()
        with pytest.raises(TmuxError, match="exited"):
            await client.command("quit")
        assert not client.alive
        with pytest.raises(TmuxError, match="not running"):
            await client.command("echo")
        await client.close()

    asyncio.run(main())
