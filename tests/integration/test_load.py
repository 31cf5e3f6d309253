"""Load through the HTTP API: 50 concurrent sessions x 20 commands, and 200 concurrent requests.

Every answer must be exactly right under load. Timings are printed (pytest -s) for the record, not
asserted: speed belongs in bench/.
"""

from __future__ import annotations

import asyncio
import statistics
import time

import aiohttp

from sshkeep.common.models.sessions import (
    CommandResult,
    Health,
    OpenSessionRequest,
    SendCommandRequest,
    SessionList,
)
from tests.instance import Instance
from tests.support import SHELLS

SESSIONS = 50
COMMANDS = 20
REQUESTS = 200


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def test_50_sessions_20_commands_each(instance: Instance) -> None:
    latencies: list[float] = []
    async with instance.client() as c:
        t0 = time.monotonic()
        infos = await asyncio.gather(
            *(
                c.open_session(OpenSessionRequest(host=SHELLS[i % len(SHELLS)], timeout=50))
                for i in range(SESSIONS)
            )
        )
        opened = time.monotonic() - t0
        assert all(info.state == "ready" for info in infos), [i for i in infos if i.state != "ready"]
        sids = [info.session_id for info in infos]
        assert len(set(sids)) == SESSIONS

        async def drive(i: int, sid: str) -> list[tuple[str, int | None, str]]:
            got = []
            for j in range(COMMANDS):
                start = time.monotonic()
                r = await c.send_command(
                    sid, SendCommandRequest(command=f"echo s{i}-c{j}; (exit {j % 7})", timeout=50)
                )
                latencies.append(time.monotonic() - start)
                got.append((r.status, r.exit_code, r.output))
            return got

        t1 = time.monotonic()
        results = await asyncio.gather(*(drive(i, sid) for i, sid in enumerate(sids)))
        ran = time.monotonic() - t1
        for i, got in enumerate(results):
            assert got == [("completed", j % 7, f"s{i}-c{j}") for j in range(COMMANDS)], (i, sids[i])
        # Afterwards every session is idle and its record of commands is complete.
        listing = await c.list_sessions()
        assert sorted(s.session_id for s in listing.sessions) == sorted(sids)
        assert all(s.state == "ready" and s.running_command_id is None for s in listing.sessions)
        last = await c.get_command(sids[7], f"c{COMMANDS}")
        assert (last.status, last.exit_code, last.output) == (
            "completed",
            (COMMANDS - 1) % 7,
            f"s7-c{COMMANDS - 1}",
        )
        await asyncio.gather(*(c.close_session(sid) for sid in sids))
        assert (await c.list_sessions()).sessions == []
    n = SESSIONS * COMMANDS
    print(
        f"\nload: opened {SESSIONS} sessions in {opened:.1f}s; {n} commands in {ran:.1f}s "
        f"({n / ran:.0f}/s); latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p95 {pct(latencies, 0.95) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


async def test_200_concurrent_requests(instance: Instance) -> None:
    async with instance.client() as c:
        sids = [(await c.open_session(OpenSessionRequest(host=sh))).session_id for sh in SHELLS]
        for k, sid in enumerate(sids):
            for j in range(3):
                r = await c.send_command(sid, SendCommandRequest(command=f"echo r{k}-{j}; (exit {j})"))
                assert (r.exit_code, r.output) == (j, f"r{k}-{j}")

    # No connection limit on the client side: 200 requests really are in flight at once.
    connector = aiohttp.UnixConnector(path=str(instance.socket), limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, base_url="http://localhost"
    ) as http:

        async def one(n: int) -> None:
            kind = n % 3
            if kind == 0:
                async with http.get("/v1/health") as resp:
                    assert resp.status == 200
                    health = Health.model_validate_json(await resp.read())
                assert health.status == "ok" and health.sessions == len(SHELLS)
            elif kind == 1:
                async with http.get("/v1/sessions") as resp:
                    assert resp.status == 200
                    listing = SessionList.model_validate_json(await resp.read())
                assert sorted(s.session_id for s in listing.sessions) == sorted(sids)
            else:
                k, j = n % len(sids), (n // 3) % 3
                async with http.get(f"/v1/sessions/{sids[k]}/commands/c{j + 1}") as resp:
                    assert resp.status == 200, await resp.text()
                    res = CommandResult.model_validate_json(await resp.read())
                assert (res.status, res.exit_code, res.output) == ("completed", j, f"r{k}-{j}")

        start = time.monotonic()
        await asyncio.gather(*(one(n) for n in range(REQUESTS)))
        took = time.monotonic() - start
    print(f"\nload: {REQUESTS} concurrent requests answered in {took:.2f}s")
    code, health = instance.curl("/v1/health")
    assert code == 200 and health["sessions"] == len(SHELLS)
