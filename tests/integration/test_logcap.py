"""The per-session log cap: disk use stays bounded, and losses are reported, never silent."""

from __future__ import annotations

import asyncio
import os

import yaml

from sshkeep.common.models.sessions import CommandQuery, OpenSessionRequest, SendCommandRequest
from tests.instance import Instance

CAP = 2**20


async def test_log_cap_reports_dropped_output(instance: Instance) -> None:
    config = {"settings": {"log_cap_mb": CAP // 2**20}, "connections": instance.connections}
    (instance.home / "config.yml").write_text(yaml.safe_dump(config))
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        cmd = "head -c 3000000 /dev/zero | tr '\\0' x | fold -w 99; echo END"
        res = await c.send_command(sid, SendCommandRequest(command=cmd, timeout=50))
        assert res.status == "completed" and res.exit_code == 0
        # The monitor enforces the cap once per tick: wait until it has caught up with the output.
        log = instance.paths.logs_dir / f"{sid}.log"
        for _ in range(80):
            res = await c.get_command(sid, res.command_id, CommandQuery(wait=0))
            if res.dropped_bytes > 1_000_000 and os.stat(log).st_blocks * 512 <= CAP * 1.1:
                break
            await asyncio.sleep(0.25)
        assert res.dropped_bytes > 1_000_000
        assert res.output.endswith("END")
        st = os.stat(log)
        assert st.st_size > 3_000_000  # offsets never move
        assert st.st_blocks * 512 <= CAP * 1.1  # but the disk holds about the cap at most
        after = await c.send_command(sid, SendCommandRequest(command="echo fine"))
        assert (after.status, after.exit_code, after.output, after.dropped_bytes) == (
            "completed",
            0,
            "fine",
            0,
        )
