"""wait_for never blocks the daemon: a big backlog (since=0) is scanned in chunks off the event
loop, and a catastrophic pattern is stopped by its time budget."""

from __future__ import annotations

import asyncio

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest, WaitForRequest
from tests.instance import Instance

# 30 MB of lines `aaa…ax`: `(a|aa)+$` fails on each only after exponential backtracking.
BACKLOG = "head -c 30000000 /dev/zero | tr '\\0' a | fold -w 99 | sed 's/$/x/'; echo; echo END"


async def test_health_answers_while_a_big_catastrophic_wait_runs(instance: Instance) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        res = await c.send_command(sid, SendCommandRequest(command=BACKLOG, timeout=50))
        assert res.status == "completed" and res.total_lines > 300_000, res
        waiting = asyncio.create_task(
            c.wait_for(sid, WaitForRequest(pattern=r"(a|aa)+$", since=0, timeout=40))
        )
        await asyncio.sleep(0.2)  # the wait is under way
        healths = 0
        while not waiting.done() and healths < 3:
            assert (await c.health()).status == "ok"
            healths += 1
        assert healths == 3 and not waiting.done(), "health must answer while the wait runs"
        found = await waiting
        assert not found.matched and found.hint is not None and "budget" in found.hint, found
        # The daemon is fine afterwards, and a plain pattern over the same backlog still works.
        hit = await c.wait_for(sid, WaitForRequest(pattern=r"^END$", since=0, timeout=20))
        assert hit.matched and hit.line == "END", hit
        after = await c.send_command(sid, SendCommandRequest(command="echo fine"))
        assert (after.status, after.output) == ("completed", "fine")
