"""Admin calls: cleanup_dead_sessions (HTTP, MCP), the periodic reaper, the OpenAPI document."""

from __future__ import annotations

import time
from typing import Any

import yaml
from mcp import Client

from sshkeep.common.client import ApiClient
from sshkeep.common.models.admin import CleanupRequest, CleanupResult
from sshkeep.common.models.sessions import SendCommandRequest
from tests.instance import Instance
from tests.support import call, call_error, eventually, open_session, text_of, wait_state


async def open_two(c: ApiClient) -> tuple[str, str]:
    return await open_session(c, "bash"), await open_session(c, "dash")


async def cleanup(c: ApiClient, max_age: float | None = None) -> CleanupResult:
    body = CleanupRequest() if max_age is None else CleanupRequest(max_age_seconds=max_age)
    return await c.cleanup_dead_sessions(body)


async def test_cleanup_dead_sessions_over_http(instance: Instance) -> None:
    async with instance.client() as c:
        dead, alive = await open_two(c)
        log_path = instance.paths.logs_dir / f"{dead}.log"
        assert log_path.exists()
        instance.kill_ssh(dead)
        await wait_state(c, dead, "disconnected")

        # Younger than max_age: kept, and said so.
        res = await cleanup(c, 3600)
        assert (res.removed, res.kept, res.max_age_seconds) == ([], [dead], 3600)
        assert {s.session_id for s in (await c.list_sessions()).sessions} == {dead, alive}

        # Default max_age 0: every dead one goes; live ones stay.
        res = await cleanup(c)
        assert (res.removed, res.kept) == ([dead], [])
        assert [s.session_id for s in (await c.list_sessions()).sessions] == [alive]
        assert instance.tmux("has-session", "-t", f"={dead}").returncode != 0
        assert not log_path.exists()
        # Nothing left to clean; the live session is untouched and works.
        assert (await cleanup(c)).removed == []
        r = await c.send_command(alive, SendCommandRequest(command="echo still-here"))
        assert (r.status, r.exit_code, r.output) == ("completed", 0, "still-here")

    code, body = instance.curl("/v1/sessions/cleanup", "POST", {"max_age_seconds": 0})
    assert (code, body["removed"]) == (200, [])


async def test_cleanup_dead_sessions_tool(instance: Instance) -> None:
    async with instance.client() as c:
        dead, alive = await open_two(c)
        instance.kill_ssh(dead)
        await wait_state(c, dead, "disconnected")
    async with Client(instance.mcp_params()) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        schema = tools["cleanup_dead_sessions"].input_schema
        assert schema["properties"]["max_age_seconds"]["minimum"] == 0
        assert schema.get("required", []) == []

        async def cleanup_text(args: dict[str, Any]) -> tuple[dict[str, Any], str]:
            res = await mcp.call_tool("cleanup_dead_sessions", args)
            assert not res.is_error and res.structured_content is not None, text_of(res)
            return res.structured_content, text_of(res)

        out, text = await cleanup_text({"max_age_seconds": 86400})
        assert (out["removed"], out["kept"]) == ([], [dead])
        assert dead in text
        out, text = await cleanup_text({})
        assert out["removed"] == [dead]
        assert f"closed 1 disconnected session(s): {dead}" in text
        listed = await call(mcp, "list_sessions")
        assert [s["session_id"] for s in listed["sessions"]] == [alive]
        await call_error(mcp, "cleanup_dead_sessions", {"max_age_seconds": -1})


async def test_reaper_removes_sessions_dead_longer_than_the_setting(instance: Instance) -> None:
    config = {"connections": instance.connections, "settings": {"dead_session_max_age": 2}}
    path = instance.home / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    async with instance.client() as c:
        dead, alive = await open_two(c)
        instance.kill_ssh(dead)
        await wait_state(c, dead, "disconnected")
        seen_dead_at = time.monotonic()

        async def reaped() -> bool:
            return dead not in {s.session_id for s in (await c.list_sessions()).sessions}

        await eventually(reaped, "the reaper to remove the dead session", timeout=60)
        # Not before its max age (2 s) had passed since it was seen dead.
        assert time.monotonic() - seen_dead_at >= 1.5
        assert [s.session_id for s in (await c.list_sessions()).sessions] == [alive]
        r = await c.send_command(alive, SendCommandRequest(command="echo alive"))
        assert r.output == "alive"


def test_openapi_document_over_curl(instance: Instance) -> None:
    code, doc = instance.curl("/v1/openapi.json")
    assert code == 200
    assert doc["openapi"] == "3.1.0"
    assert doc["paths"]["/v1/sessions/cleanup"]["post"]["operationId"] == "cleanup_dead_sessions"
    send = doc["paths"]["/v1/sessions/{session_id}/commands"]["post"]
    ref = send["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    model = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert model["additionalProperties"] is False and model["required"] == ["command"]
