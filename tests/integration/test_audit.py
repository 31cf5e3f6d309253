"""The audit log through the real daemon: every mutating call, secrets masked, rotation, 0600."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from typing import Any

import yaml
from mcp import Client

from sshkeep.common.keyrecord import fingerprint
from sshkeep.common.models.admin import CleanupRequest, CleanupResult
from sshkeep.common.models.sessions import (
    CommandQuery,
    OpenSessionRequest,
    SendCommandRequest,
    SendKeysRequest,
)
from tests.instance import Instance
from tests.rawhttp import raw_request
from tests.support import call, eventually

SECRET = "Hunter2-s3cr3t"
BAD_RID = "bad id; " + "x" * 100  # spaces, and too long: replaced by a fresh id


def audit_lines(instance: Instance) -> list[dict[str, Any]]:
    return [json.loads(x) for x in instance.paths.audit_log.read_text().splitlines()]


async def test_mutating_calls_are_audited_with_secrets_masked(instance: Instance) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        r = await c.send_command(sid, SendCommandRequest(command=f"export API_TOKEN={SECRET}; echo set"))
        assert (r.status, r.output) == ("completed", "set")
        r = await c.send_command(sid, SendCommandRequest(command=f"(exit 4) # --password {SECRET}"))
        assert r.exit_code == 4
        # A password prompt: the answer typed with send_keys is masked entirely.
        asked = await c.send_command(
            sid,
            SendCommandRequest(command='read -r -s -p "Password: " pw; echo; echo "len=${#pw}"', timeout=3),
        )
        assert asked.status == "waiting_input" and asked.question is not None, asked
        assert asked.question.kind == "password"
        await c.send_keys(sid, SendKeysRequest(keys=[SECRET, "Enter"]))
        done = await c.get_command(sid, asked.command_id, CommandQuery(wait=20))
        assert (done.status, done.output) == ("completed", f"Password: \nlen={len(SECRET)}")
        # Reads are not audited.
        await c.list_sessions()
        await c.get_session(sid)
        await c.close_session(sid)

    assert stat.S_IMODE(os.stat(instance.paths.audit_log).st_mode) == 0o600
    text = instance.paths.audit_log.read_text()
    assert SECRET not in text
    assert SECRET not in instance.daemon_log()
    lines = audit_lines(instance)
    assert [(x["method"], x["tool"]) for x in lines] == [
        ("POST", "open_session"),
        ("POST", "send_command"),
        ("POST", "send_command"),
        ("POST", "send_command"),
        ("POST", "send_keys"),
        ("DELETE", "close_session"),
    ]
    opened, export, failed, prompt, keys, closed = lines
    assert opened["session_id"] == sid and opened["status"] == 201 and opened["result"] == "ready"
    assert opened["params"] == {"host": "bash", "timeout": 30.0}
    assert export["params"]["command"] == "export API_TOKEN=***; echo set"
    assert (export["result"], export["exit_code"], export["command_id"]) == ("completed", 0, "c1")
    assert failed["params"]["command"] == "(exit 4) # --password ***"
    assert (failed["result"], failed["exit_code"]) == ("completed", 4)
    assert prompt["result"] == "waiting_input"
    assert keys["params"] == {"keys": [fingerprint(SECRET), "Enter"], "wait": 3.0}
    assert keys["session_id"] == sid and keys["status"] == 200
    assert closed["route"] == "/v1/sessions/{session_id}" and closed["closed"] is True
    for x in lines:
        assert x["request_id"] and x["ts"] and x["decision"] == "allowed"
        assert x["peer"]["uid"] == os.getuid() and x["peer"]["pid"] > 0
        assert x["session_id"] == sid


async def test_errors_and_request_ids_are_audited(instance: Instance) -> None:
    reply = raw_request(
        instance.socket,
        "POST",
        "/v1/sessions/nosuch-000000/commands",
        json.dumps({"command": f"mysql -p{SECRET}", "bogus": 1}).encode(),
        headers={"X-Request-Id": "rid-from-test-1"},
    )
    assert reply.status == 400
    assert reply.headers["x-request-id"] == "rid-from-test-1"
    reply = raw_request(instance.socket, "POST", "/v1/sessions/nosuch-000000/keys", b"\xff" + SECRET.encode())
    assert reply.status == 400 and reply.headers["x-request-id"]
    bad_id = raw_request(instance.socket, "DELETE", "/v1/sessions/x", headers={"X-Request-Id": BAD_RID})
    assert bad_id.status == 404
    lines = audit_lines(instance)
    assert len(lines) == 3
    first, second, third = lines
    assert first["request_id"] == "rid-from-test-1"
    assert first["params"] == {"command": "mysql -p***", "bogus": 1}
    assert (first["status"], first["result"]) == (400, "bad_request")
    assert "bogus" in first["error"]
    assert second["params"] == f"<unparsed body, {len(SECRET) + 1} bytes>"
    assert second["request_id"] == reply.headers["x-request-id"]
    assert third["request_id"] != BAD_RID and third["result"] == "session_not_found"
    assert SECRET not in instance.paths.audit_log.read_text()


async def test_audit_log_rotates_by_settings(instance: Instance) -> None:
    config = {"connections": instance.connections, "settings": {"audit_max_bytes": 4096, "audit_keep": 2}}
    path = instance.home / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    async with instance.client() as c:
        for i in range(60):
            await c.request("POST", "/v1/sessions/cleanup", CleanupResult, CleanupRequest(max_age_seconds=i))
    audit = instance.paths.audit_log
    names = sorted(p.name for p in audit.parent.iterdir() if p.name.startswith("audit.log"))
    assert names == ["audit.log", "audit.log.1", "audit.log.2"]
    ages = []
    for name in reversed(names):
        p = audit.parent / name
        assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
        assert p.stat().st_size <= 4096
        ages += [x["params"]["max_age_seconds"] for x in map(json.loads, p.read_text().splitlines())]
    # The newest records, in order, none torn.
    assert ages == list(range(60 - len(ages), 60))


async def test_concurrent_calls_each_get_one_whole_line(instance: Instance) -> None:
    async with instance.client() as c:
        await asyncio.gather(
            *(
                c.request("POST", "/v1/sessions/cleanup", CleanupResult, CleanupRequest(max_age_seconds=i))
                for i in range(100)
            )
        )
    lines = audit_lines(instance)
    assert sorted(x["params"]["max_age_seconds"] for x in lines) == list(range(100))
    assert len({x["request_id"] for x in lines}) == 100
    assert all(x["status"] == 200 and x["tool"] == "cleanup_dead_sessions" for x in lines)


async def test_auto_started_daemon_rotates_its_log(idle_instance: Instance) -> None:
    inst = idle_instance
    config = {
        "connections": inst.connections,
        "settings": {"daemon_log_max_bytes": 4096, "daemon_log_keep": 2},
    }
    path = inst.home / "config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    log = inst.paths.daemon_log
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    log.write_text("old line\n" * 2000)
    log.chmod(0o600)
    async with Client(inst.mcp_params()) as mcp:  # the shim starts the daemon: it appends to daemon.log
        await call(mcp, "list_sessions")
    rotated = log.with_name("daemon.log.1")
    assert rotated.read_text() == "old line\n" * 2000
    assert stat.S_IMODE(os.stat(log).st_mode) == 0o600

    async def listening() -> bool:  # the new daemon writes to a fresh file
        return "daemon_listening" in log.read_text()

    await eventually(listening, "the new daemon to log daemon_listening to the fresh daemon.log")
    assert "old line" not in log.read_text()


async def test_file_writes_are_audited_by_path_and_size_only(instance: Instance) -> None:
    from sshkeep.common.models.files import WriteFileRequest, WriteFileResult

    content = f"password={SECRET}\n" * 40_000  # ~1 MB: summarised off the event loop
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        path = f"/tmp/sk-audit-{sid}.txt"
        res = await c.request(
            "POST",
            f"/v1/sessions/{sid}/files/write",
            WriteFileResult,
            WriteFileRequest(remote_path=path, content=content),
        )
        assert res.size == len(content)
        r = await c.send_command(sid, SendCommandRequest(command=f"wc -c < {path}; rm {path}"))
        assert r.output == str(len(content))
    write = [x for x in audit_lines(instance) if x["tool"] == "write_remote_file"]
    assert len(write) == 1
    assert write[0]["params"]["remote_path"] == path
    assert write[0]["params"]["content"] == f"<{len(content)} chars>"
    assert (write[0]["status"], write[0]["session_id"]) == (200, sid)
    assert SECRET not in instance.paths.audit_log.read_text()
