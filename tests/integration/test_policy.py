"""Guard rails against a real sshd, tmux and MCP client: policies, approvals, elicitation, audit."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from mcp import Client
from mcp.client.session import ClientRequestContext
from mcp_types import ElicitRequestParams, ElicitResult, ErrorData

from sshkeep.common.errors import ApprovalRequired, PolicyRefused
from sshkeep.common.models.files import ExecRequest, WriteFileRequest
from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest, SendKeysRequest
from tests.instance import Instance, new_instance
from tests.sshd import SshServer


@pytest.fixture(scope="module")
def guarded(sshd: SshServer) -> Iterator[Instance]:
    """One daemon with an operator and a read_only connection (no global admin default)."""
    conns: dict[str, dict[str, Any]] = {
        "op": {**sshd.connection("bash"), "policy": "operator"},
        "ro": {**sshd.connection("bash"), "policy": "read_only"},
    }
    inst = new_instance({})
    inst.settings = {}  # the built-in default (operator) for everything without a policy
    inst.write_config(conns)
    try:
        inst.start()
        yield inst
    finally:
        inst.destroy()


async def _open(inst: Instance, host: str) -> str:
    async with inst.client() as c:
        info = await c.open_session(OpenSessionRequest(host=host))
    assert info.state == "ready", info
    return info.session_id


async def _run(inst: Instance, sid: str, command: str) -> Any:
    async with inst.client() as c:
        return await c.send_command(sid, SendCommandRequest(command=command, timeout=20))


async def _exists(inst: Instance, sid: str, path: str) -> bool:
    async with inst.client() as c:
        res = await c.exec_command(sid, ExecRequest(command=f"test -e {path} && echo yes || echo no"))
    return res.stdout.strip() == "yes"


def _audit(inst: Instance) -> list[dict[str, Any]]:
    return [json.loads(line) for line in inst.paths.audit_log.read_text().splitlines() if line]


def _policy_events(inst: Instance, approval_id: str) -> list[str]:
    return [
        r["decision"]
        for r in _audit(inst)
        if r.get("event") == "policy" and r.get("approval_id") == approval_id
    ]


async def test_operator_asks_before_rm_and_runs_it_after_sshkeep_approve(guarded: Instance) -> None:
    sid = await _open(guarded, "op")
    target = f"/tmp/sk-policy-{secrets.token_hex(4)}"
    made = await _run(guarded, sid, f"mkdir -p {target}/sub")  # write class: operator runs it
    assert made.status == "completed" and made.exit_code == 0, made
    asked = await _run(guarded, sid, f"rm -rf {target}")
    assert asked.status == "approval_required", asked
    assert asked.approval is not None and asked.approval.command_class == "destructive"
    assert "rm" in asked.approval.reason and "destructive" in asked.approval.reason
    aid = asked.approval.approval_id
    assert f"sshkeep approve {aid}" in (asked.hint or "")
    assert await _exists(guarded, sid, target), "nothing may run before the approval"
    listing = guarded.cli("approvals")
    assert listing.returncode == 0 and aid in listing.stdout and f"rm -rf {target}" in listing.stdout
    ok = guarded.cli("approve", aid)
    assert ok.returncode == 0, ok.stderr
    done = await _run(guarded, sid, f"rm -rf {target}")
    assert done.status == "completed" and done.exit_code == 0, done
    assert not await _exists(guarded, sid, target)
    again = await _run(guarded, sid, f"rm -rf {target}")  # a once grant is used up
    assert again.status == "approval_required" and again.approval is not None
    assert again.approval.approval_id != aid
    events = _policy_events(guarded, aid)
    assert events[:3] == ["asked", "approved", "ran_approved"], events
    approved = next(r for r in _audit(guarded) if r.get("approval_id") == aid and r["decision"] == "approved")
    assert approved["route"] == "cli" and approved["by"].startswith("uid ")


async def test_decline_keeps_the_command_from_running(guarded: Instance) -> None:
    sid = await _open(guarded, "op")
    target = f"/tmp/sk-policy-{secrets.token_hex(4)}"
    await _run(guarded, sid, f"mkdir -p {target}")
    asked = await _run(guarded, sid, f"rm -rf {target}")
    assert asked.approval is not None
    aid = asked.approval.approval_id
    no = guarded.cli("decline", aid)
    assert no.returncode == 0 and "declined" in no.stdout
    retry = await _run(guarded, sid, f"rm -rf {target}")
    assert retry.status == "approval_required" and retry.approval is not None
    assert retry.approval.approval_id != aid
    assert await _exists(guarded, sid, target)
    late = guarded.cli("approve", aid)
    assert late.returncode == 1 and "declined" in late.stderr
    assert "declined" in _policy_events(guarded, aid)


async def test_elicitation_approves_through_a_real_mcp_client(guarded: Instance) -> None:
    sid = await _open(guarded, "op")
    target = f"/tmp/sk-policy-{secrets.token_hex(4)}"
    await _run(guarded, sid, f"mkdir -p {target}")
    seen: list[str] = []

    async def answer(ctx: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        seen.append(getattr(params, "message", ""))
        return ElicitResult(action="accept", content={"approve": True})

    async with Client(guarded.mcp_params(), elicitation_callback=answer) as c:
        res = await c.call_tool("send_command", {"session_id": sid, "command": f"rm -rf {target}"})
    assert not res.is_error, res.content
    out = dict(res.structured_content or {})
    assert out["status"] == "completed" and out["exit_code"] == 0, out
    assert len(seen) == 1 and f"rm -rf {target}" in seen[0], seen
    assert not await _exists(guarded, sid, target)
    approved = [r for r in _audit(guarded) if r.get("event") == "policy" and r["decision"] == "approved"]
    assert approved[-1]["route"] == "mcp_elicitation" and approved[-1]["command"] == f"rm -rf {target}"


async def test_elicitation_decline_and_no_elicitation_fail_closed(guarded: Instance) -> None:
    sid = await _open(guarded, "op")
    target = f"/tmp/sk-policy-{secrets.token_hex(4)}"
    await _run(guarded, sid, f"mkdir -p {target}")

    async def refuse(ctx: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult | ErrorData:
        return ElicitResult(action="accept", content={"approve": False})

    async with Client(guarded.mcp_params(), elicitation_callback=refuse) as c:
        res = await c.call_tool("send_command", {"session_id": sid, "command": f"rm -rf {target}"})
    out = dict(res.structured_content or {})
    assert out["status"] == "approval_required" and "declined" in out["hint"], out
    declined = [r for r in _audit(guarded) if r.get("event") == "policy" and r["decision"] == "declined"]
    assert declined[-1]["route"] == "mcp_elicitation" and declined[-1]["command"] == f"rm -rf {target}"
    # A client without elicitation, and nobody approving: nothing runs, the hint names the CLI.
    async with Client(guarded.mcp_params()) as c:
        res = await c.call_tool("send_command", {"session_id": sid, "command": f"rm -rf {target}"})
        keys = await c.call_tool("send_keys", {"session_id": sid, "keys": [f"rm -rf {target}", "Enter"]})
        dry = await c.call_tool("check_command", {"session_id": sid, "command": f"sudo rm -rf {target}"})
    out = dict(res.structured_content or {})
    assert out["status"] == "approval_required", out
    assert f"sshkeep approve {out['approval']['approval_id']}" in out["hint"]
    assert keys.is_error and "approval_required" in " ".join(getattr(x, "text", "") for x in keys.content)
    check = dict(dry.structured_content or {})
    assert (
        check["decision"] == "ask"
        and check["command_class"] == "privileged"
        and check["policy"] == "operator"
    )
    assert await _exists(guarded, sid, target)
    await asyncio.sleep(0.6)  # let the keys' echo settle before reading the screen
    async with guarded.client() as c:
        screen = await c.get_snapshot(sid)
    assert f"rm -rf {target}" not in screen.screen, "refused keys must not be typed"


async def test_operator_checks_the_line_keys_form(guarded: Instance) -> None:
    sid = await _open(guarded, "op")
    target = f"/tmp/sk-policy-{secrets.token_hex(4)}"
    await _run(guarded, sid, f"mkdir -p {target}")
    async with guarded.client() as c:
        await c.send_keys(sid, SendKeysRequest(keys=[f"rm -rf {target}"]))  # no Enter: only typed
        with pytest.raises(ApprovalRequired) as info:
            await c.send_keys(sid, SendKeysRequest(keys=["Enter"]))
        aid = str(info.value.context["approval_id"])
        assert await _exists(guarded, sid, target)
        assert guarded.cli("approve", aid).returncode == 0
        await c.send_keys(sid, SendKeysRequest(keys=["Enter"]))
        for _ in range(50):
            if not await _exists(guarded, sid, target):
                break
            await asyncio.sleep(0.1)
    assert not await _exists(guarded, sid, target)


async def test_read_only_refuses_writes_redirects_file_writes_and_typed_rm(guarded: Instance) -> None:
    sid = await _open(guarded, "ro")
    target = f"/tmp/sk-policy-{secrets.token_hex(4)}"
    op = await _open(guarded, "op")
    await _run(guarded, op, f"mkdir -p {target}")
    ok = await _run(guarded, sid, f"ls -d {target} && cat /etc/hostname | wc -l")
    assert ok.status == "completed" and ok.exit_code == 0, ok
    async with guarded.client() as c:
        for command in (f"touch {target}/a", f"echo hi > {target}/b", f"rm -rf {target}"):
            with pytest.raises(PolicyRefused) as refused:
                await c.send_command(sid, SendCommandRequest(command=command))
            assert "read_only" in refused.value.message
        with pytest.raises(PolicyRefused):
            await c.exec_command(sid, ExecRequest(command=f"touch {target}/c"))
        with pytest.raises(PolicyRefused):
            await c.write_remote_file(sid, WriteFileRequest(remote_path=f"{target}/d", content="x"))
        with pytest.raises(PolicyRefused):
            await c.send_keys(sid, SendKeysRequest(keys=[f"rm -rf {target}", "Enter"]))
    assert await _exists(guarded, op, target)
    for name in "abcd":
        assert not await _exists(guarded, op, f"{target}/{name}")
    refused_lines = [r for r in _audit(guarded) if r.get("event") == "policy" and r["decision"] == "refused"]
    assert any(r["tool"] == "write_remote_file" for r in refused_lines)
    assert any(r["tool"] == "send_keys" for r in refused_lines)


async def test_no_api_call_loosens_a_policy(guarded: Instance) -> None:
    sid = await _open(guarded, "ro")
    code, body = guarded.curl("/v1/sessions", "POST", {"host": "ro", "policy": "admin"})
    assert code == 400 and "policy" in body["error"]["message"]
    code, body = guarded.curl(
        f"/v1/sessions/{sid}/commands", "POST", {"command": "touch /tmp/x", "policy": "admin"}
    )
    assert code == 400 and "policy" in body["error"]["message"]
    for method, path in (("POST", "/v1/policy"), ("POST", f"/v1/sessions/{sid}/policy")):
        code, body = guarded.curl(path, method, {"policy": "admin"})
        assert code in (404, 405) or body["error"]["code"] in ("not_found", "bad_request"), (path, body)
    code, body = guarded.curl(f"/v1/sessions/{sid}/policy/check", "POST", {"command": "touch /tmp/x"})
    assert code == 200 and body["policy"] == "read_only" and body["decision"] == "refuse"
    code, body = guarded.curl(f"/v1/sessions/{sid}/commands", "POST", {"command": "touch /tmp/x"})
    assert code == 403 and body["error"]["code"] == "policy_refused"
    async with Client(guarded.mcp_params()) as c:
        names = {t.name for t in (await c.list_tools()).tools}
    assert "check_command" in names and not names & {"approve", "decline", "list_approvals"}


async def test_approval_requests_expire(guarded: Instance) -> None:
    config = yaml.safe_load((guarded.home / "config.yml").read_text())
    short = {**config, "settings": {"approval_ttl": 2}}
    (guarded.home / "config.yml").write_text(yaml.safe_dump(short))
    try:
        sid = await _open(guarded, "op")
        asked = await _run(guarded, sid, "rm -rf /tmp/sk-policy-never")
        assert asked.approval is not None
        aid = asked.approval.approval_id
        assert asked.approval.expires_at - time.time() <= 2.5  # settings.approval_ttl applies
        for _ in range(100):
            await asyncio.sleep(0.1)
            if "expired" in _policy_events(guarded, aid):
                break
        assert "expired" in _policy_events(guarded, aid)
        late = guarded.cli("approve", aid)
        assert late.returncode == 1 and "expired" in late.stderr
        listing = guarded.cli("approvals", "--all", "--json")
        states = {a["approval_id"]: a["state"] for a in json.loads(listing.stdout)["approvals"]}
        assert states[aid] == "expired"
    finally:
        (guarded.home / "config.yml").write_text(yaml.safe_dump(config))


async def test_audit_verify_detects_an_edited_line(guarded: Instance) -> None:
    ok = guarded.cli("audit", "verify")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "intact" in ok.stdout
    log = guarded.paths.audit_log
    lines = log.read_text().splitlines(keepends=True)
    assert len(lines) > 5
    victim = len(lines) // 2
    lines[victim] = (
        lines[victim]
        .replace('"decision":"allowed"', '"decision":"refused"', 1)
        .replace('"decision":"asked"', '"decision":"allowed"', 1)
    )
    if lines[victim] == log.read_text().splitlines(keepends=True)[victim]:
        lines[victim] = lines[victim].replace('"ts":"', '"ts":"1', 1)
    log.write_text("".join(lines))
    bad = guarded.cli("audit", "verify")
    assert bad.returncode == 1
    assert f"line {victim + 1}" in bad.stderr, bad.stderr
