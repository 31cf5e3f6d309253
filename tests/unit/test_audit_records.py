"""sshkeep.daemon.api.audit's summaries (what a request turns into in the audit log) and its file."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from sshkeep.common.keyrecord import fingerprint
from sshkeep.common.logs import MASK
from sshkeep.common.settings import Settings
from sshkeep.daemon.api.audit import MAX_TEXT, AuditLog, cap_daemon_log, summarize_body, summarize_keys

SECRET = "Hunter2-s3cr3t"


def test_command_text_is_masked() -> None:
    out = summarize_body(json.dumps({"command": f"mysql --password={SECRET} -e 'select 1'"}).encode(), False)
    assert out == {"command": f"mysql --password={MASK} -e 'select 1'"}


def test_secret_fields_are_masked_and_others_kept() -> None:
    body = {"host": "web", "password": SECRET, "port": 22, "opts": {"api_token": SECRET, "n": [1, 2]}}
    out = summarize_body(json.dumps(body).encode(), False)
    assert out == {"host": "web", "password": MASK, "port": 22, "opts": {"api_token": MASK, "n": [1, 2]}}


def test_file_contents_are_logged_as_size_only() -> None:
    body = {"remote_path": "/etc/app.conf", "content": f"password={SECRET}\n" * 1000, "encoding": "text"}
    out = summarize_body(json.dumps(body).encode(), False)
    assert out == {
        "remote_path": "/etc/app.conf",
        "content": f"<{len(body['content'])} chars>",
        "encoding": "text",
    }
    assert "data" in str(summarize_body(json.dumps({"data": [1, 2, 3]}).encode(), False))


def test_long_command_is_clipped_with_its_length() -> None:
    cmd = "echo " + "x" * 300_000
    out = summarize_body(json.dumps({"command": cmd}).encode(), False)
    assert isinstance(out, dict)
    assert out["command"].startswith("echo xxx")
    assert out["command"].endswith(f"… [{len(cmd)} chars]")
    assert len(out["command"]) < MAX_TEXT + 40


def test_keys_keep_key_names_and_fingerprint_text_at_a_secret_prompt() -> None:
    keys = ["y", "Enter", "C-c", "1234", "Up"]
    assert summarize_keys(keys, secret_prompt=False) == keys
    pin = f"<secret: 4 chars, sha256:{hashlib.sha256(b'1234').hexdigest()[:12]}>"
    assert summarize_keys(keys, secret_prompt=True) == [fingerprint("y"), "Enter", "C-c", pin, "Up"]
    body = json.dumps({"keys": [SECRET, "Enter"]}).encode()
    assert summarize_body(body, True) == {"keys": [fingerprint(SECRET), "Enter"]}
    # Secret-looking text is fingerprinted at any prompt; ordinary text is kept.
    out = summarize_keys([SECRET, "export API_TOKEN=abc123", "ls -la /tmp", "Enter"], secret_prompt=False)
    assert out[0] == fingerprint(SECRET) and out[1] == fingerprint("export API_TOKEN=abc123")
    assert out[2:] == ["ls -la /tmp", "Enter"]
    assert SECRET not in json.dumps(out) and "abc123" not in json.dumps(out)
    many = summarize_keys(["a"] * 500, False)
    assert len(many) == 51 and many[-1] == "… [500 items]"


def test_bodies_that_are_not_json_objects_are_never_logged() -> None:
    broken = f'{{"password": "{SECRET}"'.encode()
    assert summarize_body(broken, False) == f"<unparsed body, {len(broken)} bytes>"
    assert summarize_body(b"\xff\xfe" + SECRET.encode(), False) == f"<unparsed body, {2 + len(SECRET)} bytes>"
    assert summarize_body(json.dumps([SECRET]).encode(), False) == f"<list body, {len(SECRET) + 4} bytes>"
    assert summarize_body(b"[" * 100_000, False) == "<unparsed body, 100000 bytes>"
    assert summarize_body(b"", False) == {}
    assert summarize_body(None, False) is None


def test_deep_and_wide_bodies_are_bounded() -> None:
    deep: object = "leaf"
    for _ in range(50):
        deep = {"k": deep}
    out = json.dumps(summarize_body(json.dumps({"x": deep}).encode(), False))
    assert "leaf" not in out and len(out) < 200
    wide = summarize_body(json.dumps({f"k{i}": i for i in range(1000)}).encode(), False)
    assert isinstance(wide, dict) and len(wide) == 51


def test_audit_log_appends_0600_lines_and_rotates(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    settings = {"audit_max_bytes": 4096, "audit_keep": 2}
    audit = AuditLog(path, lambda: Settings.parse(settings))

    async def write_many() -> None:
        for i in range(200):
            await audit.write({"i": i, "pad": "p" * 80})

    try:
        asyncio.run(write_many())
    finally:
        audit.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["audit.log", "audit.log.1", "audit.log.2"]
    for name in names:
        st = os.stat(tmp_path / name)
        assert st.st_mode & 0o777 == 0o600
        assert st.st_size <= 4096
    lines = [json.loads(x) for n in reversed(names) for x in (tmp_path / n).read_text().splitlines()]
    numbers = [entry["i"] for entry in lines]
    assert numbers == list(range(numbers[0], 200))  # in order, newest kept, nothing torn


def test_audit_log_repairs_a_loose_mode(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    path.write_text("")
    path.chmod(0o644)
    audit = AuditLog(path, Settings)
    try:
        asyncio.run(audit.write({"x": 1}))
    finally:
        audit.close()
    assert os.stat(path).st_mode & 0o777 == 0o600
    record = json.loads(path.read_text())
    assert record["x"] == 1 and set(record) == {"x", "prev", "hash"}


def test_cap_daemon_log_only_touches_our_own_stderr(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    log.write_text("x" * 10_000)
    # This process's stderr is not that file: nothing happens.
    assert not cap_daemon_log(log, 4096, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.log"]


def test_cap_daemon_log_rotates_our_stderr_and_reopens_it(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    log.write_text("old\n" * 3000)
    code = (
        "import sys; from pathlib import Path; from sshkeep.daemon.api.audit import cap_daemon_log\n"
        "print('before', file=sys.stderr, flush=True)\n"
        f"assert cap_daemon_log(Path({str(log)!r}), 4096, 2)\n"
        "print('after', file=sys.stderr, flush=True)\n"
    )
    with open(log, "ab") as err:
        subprocess.run([sys.executable, "-c", code], stderr=err, check=True, cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["daemon.log", "daemon.log.1"]
    assert (tmp_path / "daemon.log.1").read_text().endswith("old\nbefore\n")
    assert log.read_text() == "after\n"
    assert os.stat(log).st_mode & 0o777 == 0o600


def test_reply_fields_from_the_model_match_those_from_its_bytes() -> None:
    """The audit line takes a reply's result fields from the handler's model instead of parsing
    the bytes it sent: the same fields with the same values."""
    from aiohttp import web

    from sshkeep.common.models.admin import CleanupResult
    from sshkeep.common.models.sessions import CloseResult, CommandResult, SendKeysResult
    from sshkeep.daemon.api.audit import _reply_fields
    from sshkeep.daemon.api.core import reply

    running = CommandResult(session_id="s1", command_id="c2", command="sleep 9", status="running")
    done = CommandResult(session_id="s1", command_id="c3", command="false", status="completed", exit_code=1)
    models = [
        running,
        done,
        SendKeysResult(session_id="s1", sent=2, result=done),
        SendKeysResult(session_id="s1", sent=1),
        CloseResult(session_id="s1", closed=True),
        CleanupResult(removed=["a", "b"], max_age_seconds=0),
    ]
    for model in models:
        resp = reply(model)
        assert isinstance(resp, web.Response)
        from_bytes = _reply_fields(resp)
        assert from_bytes, model
        assert _reply_fields(resp, model) == from_bytes, model
        assert json.dumps(_reply_fields(resp, model)) == json.dumps(from_bytes)


def test_a_parsed_body_is_summarised_as_its_bytes_are() -> None:
    from sshkeep.daemon.api.audit import summarize_parsed

    bodies = [
        {"command": f"mysql --password={SECRET} -e 'select 1'", "timeout": 5},
        {"keys": [SECRET, "Enter"]},
        {"path": "/tmp/x", "content": "y" * 5000, "nested": {"token": SECRET, "list": list(range(80))}},
    ]
    for body in bodies:
        for secret_prompt in (False, True):
            expect = summarize_body(json.dumps(body).encode(), secret_prompt)
            assert summarize_parsed(json.loads(json.dumps(body)), secret_prompt) == expect
