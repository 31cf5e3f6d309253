"""Answers typed at secret prompts of any wording are never written down as text."""

from __future__ import annotations

import hashlib
import json

from sshkeep.common.models.sessions import (
    CommandQuery,
    OpenSessionRequest,
    SendCommandRequest,
    SendKeysRequest,
)
from tests.instance import Instance

# Prompt, the question kind sshkeep reports, and an answer that looks like nothing in particular.
PROMPTS = [
    ("Secret: ", "secret", "plainword"),
    ("API token: ", "secret", "tok-zebra"),
    ("Passcode: ", "otp", "482913"),
    ("PIN: ", "password", "739146"),
]


async def test_answers_to_secret_prompts_are_recorded_as_length_and_hash(instance: Instance) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        for prompt, kind, answer in PROMPTS:
            cmd = f'read -r -s -p "{prompt}" v; echo; echo "len=${{#v}}"'
            asked = await c.send_command(sid, SendCommandRequest(command=cmd, timeout=3))
            assert asked.status == "waiting_input" and asked.question is not None, asked
            assert asked.question.kind == kind, asked.question
            await c.send_keys(sid, SendKeysRequest(keys=[answer, "Enter"]))
            done = await c.get_command(sid, asked.command_id, CommandQuery(wait=20))
            assert (done.status, done.output) == ("completed", f"{prompt}\nlen={len(answer)}")

    audit = instance.paths.audit_log.read_text()
    daemon_log = instance.daemon_log()
    records = [json.loads(x) for x in audit.splitlines()]
    keys = [x["params"]["keys"] for x in records if x["tool"] == "send_keys"]
    assert len(keys) == len(PROMPTS)
    for (_prompt, _kind, answer), typed in zip(PROMPTS, keys, strict=True):
        assert answer not in audit and answer not in daemon_log
        digest = hashlib.sha256(answer.encode()).hexdigest()[:12]
        assert typed == [f"<secret: {len(answer)} chars, sha256:{digest}>", "Enter"]
