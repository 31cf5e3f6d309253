"""Whose output is whose under latency: keys sent to an idle prompt and a command right after them,
over a ~200 ms round trip (the test sshd's host in a network namespace behind a delaying relay,
tests/delayed.py), per shell, through the MCP client. Every reply holds only its own command's
output and exit code; a command line typed with keys is a command record of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mcp import Client

from tests import delayed
from tests.instance import Instance, instance_of
from tests.sshd import SshServer
from tests.support import SHELLS, call, default_connections, mcp_open_session

RTT_MS = 200.0
TRIES = 10


@pytest.fixture(scope="module")
def slow(sshd: SshServer) -> Iterator[Instance]:
    """An instance whose config entries (one per shell) reach the test host at RTT_MS."""
    problem = delayed.problem()
    if problem is not None:
        pytest.fail(f"no delayed path here: {problem}", pytrace=False)
    with delayed.delayed_sshd(sshd, RTT_MS) as path:
        conns = default_connections(sshd)
        for conn in conns.values():
            conn.update(port=path.port, ssh_options=path.ssh_options())
        with instance_of(conns) as inst:
            yield inst


async def _command(c: Client, sid: str, command: str) -> dict[str, Any]:
    return await call(c, "send_command", {"session_id": sid, "command": command, "timeout": 20})


@pytest.mark.parametrize("shell", SHELLS)
async def test_keys_then_command_under_latency(slow: Instance, shell: str) -> None:
    async with Client(slow.mcp_params()) as c:
        sid = await mcp_open_session(c, shell)
        typed: dict[str, str] = {}  # command id of each keys-typed line -> its text
        for i in range(TRIES):
            # Even tries: the keys return at once (wait=0), the command follows before the shell
            # has even seen them. Odd tries: the keys' own reply waits for their command.
            wait = 0 if i % 2 == 0 else 3
            for keys, word in (
                (["Enter"], f"A{i}"),
                (["C-c"], f"B{i}"),
                ([f"echo typed{i}", "Enter"], f"mine{i}"),
                (None, f"C{i}"),  # interrupt_command with nothing running
            ):
                if keys is None:
                    await call(c, "interrupt_command", {"session_id": sid})
                else:
                    k = await call(c, "send_keys", {"session_id": sid, "keys": keys, "wait": wait})
                    if k.get("result") is not None and len(keys) == 2:
                        assert k["result"]["output"] == f"typed{i}", (shell, i, k)
                r = await _command(c, sid, f"echo {word}")
                assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, word), (shell, i, r)
                assert r["source"] == "agent"
            listing = await call(c, "list_commands", {"session_id": sid, "limit": 10})
            mine = [x for x in listing["commands"] if x["command"] == f"echo typed{i}"]
            assert len(mine) == 1 and mine[0]["source"] == "keys", (shell, i, listing)
            typed[mine[0]["command_id"]] = f"typed{i}"
        # Each keys-typed line has its own id and its own output, nothing of the agent's commands.
        for cid, out in typed.items():
            got = await call(c, "get_command", {"session_id": sid, "command_id": cid})
            assert (got["status"], got["exit_code"], got["output"]) == ("completed", 0, out), (shell, got)
        await call(c, "close_session", {"session_id": sid})
