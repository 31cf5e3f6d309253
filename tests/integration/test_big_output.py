"""100 MB and 200 MB of output: replies are exact (line counts, dropped_bytes) and never claim
completion with output missing, with and without the log cap at work."""

from __future__ import annotations

import asyncio

import yaml

from sshkeep.common.client import ApiClient
from sshkeep.common.models.sessions import (
    CommandQuery,
    CommandResult,
    OpenSessionRequest,
    SendCommandRequest,
)
from tests.instance import Instance

CAP_MB = 150
LINE = 100
RAW_LINE = LINE + 2  # the pty ends lines with \r\n


def flood(mb: int) -> str:
    return f"head -c {mb * 1_000_000} /dev/zero | tr '\\0' a | fold -w {LINE}"


async def run_to_the_end(c: ApiClient, sid: str, command: str) -> tuple[CommandResult, int]:
    """Run `command`, polling while it runs; every reply that says completed must be whole."""
    res = await c.send_command(sid, SendCommandRequest(command=command, timeout=2))
    polls = 0
    while res.status != "completed":
        assert res.status == "running", res
        res = await c.get_command(sid, res.command_id, CommandQuery(wait=0.3 if polls % 2 else 0))
        polls += 1
    return res, polls


async def test_100_and_200_mb(instance: Instance) -> None:
    config = {"settings": {"log_cap_mb": CAP_MB}, "connections": instance.connections}
    (instance.home / "config.yml").write_text(yaml.safe_dump(config))
    async with instance.client() as c:
        # 100 MB (102 MB in the log) fits the cap: every line, nothing dropped.
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        res, polls = await run_to_the_end(c, sid, flood(100))
        assert polls > 0  # replies were asked for while the output flowed
        assert (res.exit_code, res.total_lines, res.dropped_bytes) == (0, 1_000_000, 0), res
        assert res.truncated and res.next_offset == res.output.split("\n").index(res.truncated)
        last = await c.get_command(sid, res.command_id, CommandQuery(offset=999_990, limit=50))
        assert last.output.split("\n") == ["a" * LINE] * 10 and last.next_offset is None
        again = await c.get_command(sid, res.command_id)
        assert (again.total_lines, again.output) == (res.total_lines, res.output)
        await c.close_session(sid)

        # 200 MB (204 MB in the log) under a 150 MB cap: the start is dropped, in whole lines,
        # and what was dropped plus what is returned is exactly the output.
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        res, _ = await run_to_the_end(c, sid, flood(200))
        # The monitor enforces the cap once per tick: let it catch up with the end of the output.
        for _ in range(40):
            if res.dropped_bytes >= (204 - CAP_MB) * 1_000_000:
                break
            await asyncio.sleep(0.25)
            res = await c.get_command(sid, res.command_id)
        lines = 2_000_000
        assert res.exit_code == 0 and 0 < res.total_lines < lines
        assert res.dropped_bytes == (lines - res.total_lines) * RAW_LINE, res.dropped_bytes
        first = await c.get_command(sid, res.command_id, CommandQuery(offset=0, limit=3))
        assert first.output.split("\n") == ["a" * LINE] * 3  # no line cut in two
        tail = await c.get_command(sid, res.command_id, CommandQuery(offset=res.total_lines - 2, limit=5))
        assert tail.output.split("\n") == ["a" * LINE] * 2
        after = await c.send_command(sid, SendCommandRequest(command="echo fine"))
        assert (after.status, after.output, after.dropped_bytes) == ("completed", "fine", 0)
