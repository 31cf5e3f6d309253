"""Unit tests for sshkeep.common.logs: the redaction processor, secret masking in text, log rotation."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
import structlog

from sshkeep.common.logs import MASK, configure_logging, mask_text, redact, rotate

SECRET = "Hunter2-s3cr3t"


def run(event: dict[str, object]) -> dict[str, object]:
    return dict(redact(None, "info", dict(event)))


# --- redact (structlog processor) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["password", "PASSWORD", "db_password", "passphrase", "token", "askpass_token", "authorization",
     "Authorization", "client_secret", "api_key", "apikey", "credentials", "cookie", "passwd"],
)  # fmt: skip
def test_secret_keys_are_masked(key: str) -> None:
    assert run({"event": "x", key: SECRET})[key] == MASK


def test_other_keys_are_kept() -> None:
    out = run({"event": "session_opened", "session": "web-1a2b3c", "user": "deploy", "port": 22})
    assert out == {"event": "session_opened", "session": "web-1a2b3c", "user": "deploy", "port": 22}


def test_nested_dicts_and_lists_are_masked_at_any_depth() -> None:
    out = run(
        {
            "event": "config",
            "conn": {"host": "h", "password": SECRET, "opts": [{"token": SECRET, "n": 1}]},
            "items": ({"Authorization": SECRET},),
        }
    )
    assert out["conn"] == {"host": "h", "password": MASK, "opts": [{"token": MASK, "n": 1}]}
    assert out["items"] == [{"Authorization": MASK}]
    assert SECRET not in json.dumps(out)


def test_secrets_inside_string_values_are_masked() -> None:
    out = run(
        {
            "event": f"running mysql --password {SECRET}",
            "argv": ["sshpass", "-p", SECRET, "ssh", "-p", "22", "host"],
            "cmd": f"PGPASSWORD={SECRET} psql",
            "opts": ["--token", SECRET, "--verbose"],
        }
    )
    assert SECRET not in json.dumps(out)
    assert out["cmd"] == f"PGPASSWORD={MASK} psql"
    assert out["argv"] == ["sshpass", "-p", MASK, "ssh", "-p", "22", "host"]
    assert out["opts"] == ["--token", MASK, "--verbose"]


def test_configured_logger_masks_secrets_and_tracebacks() -> None:
    buf = io.StringIO()
    configure_logging("DEBUG", stream=buf)
    try:
        logger = structlog.get_logger("test")
        logger.info("login", password=SECRET, command=f"curl -H 'Authorization: Bearer {SECRET}' x")
        try:
            raise RuntimeError(f"failed with token={SECRET}")
        except RuntimeError:
            logger.exception("crashed")
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in buf.getvalue().splitlines() if line.startswith("{")]
    assert [entry["event"] for entry in lines] == ["login", "crashed"]
    assert lines[0]["password"] == MASK
    assert lines[0]["command"] == f"curl -H 'Authorization: Bearer {MASK}' x"
    assert "RuntimeError: failed with token=***" in lines[1]["exception"]
    assert SECRET not in buf.getvalue()


# --- mask_text --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"mysql -u root --password={SECRET} db", f"mysql -u root --password={MASK} db"),
        (f"mysql -u root --password {SECRET} db", f"mysql -u root --password {MASK} db"),
        (f"mysql -u root -p{SECRET} db", f"mysql -u root -p{MASK} db"),
        (f"export DB_PASSWORD={SECRET}; run", f"export DB_PASSWORD={MASK}; run"),
        (f"PASSWORD='{SECRET} x' ./deploy", f"PASSWORD={MASK} ./deploy"),
        (f'TOKEN="{SECRET}" make', f"TOKEN={MASK} make"),
        (f"curl -H 'Authorization: Bearer {SECRET}' https://h", f"curl -H 'Authorization: Bearer {MASK}' https://h"),
        (f"curl -H 'Authorization: {SECRET}' https://h", f"curl -H 'Authorization: {MASK}' https://h"),
        (f"curl -H 'X-Auth-Token: {SECRET}' https://h", f"curl -H 'X-Auth-Token: {MASK}' https://h"),
        (f"curl -H 'Cookie: sid={SECRET}' h", f"curl -H 'Cookie: {MASK}' h"),
        (f"git clone https://deploy:{SECRET}@git.example.com/r.git", f"git clone https://deploy:{MASK}@git.example.com/r.git"),
        (f"sshpass -p {SECRET} ssh host", f"sshpass -p {MASK} ssh host"),
        (f"""curl -d '{{"password": "{SECRET}"}}' h""", f"""curl -d '{{"password": {MASK}}}' h"""),
        (f"vault write auth token={SECRET}", f"vault write auth token={MASK}"),
        (f"CREATE USER u IDENTIFIED BY '{SECRET}';", f"CREATE USER u IDENTIFIED BY {MASK};"),
        (f"--api-key={SECRET}", f"--api-key={MASK}"),
        (f"client_secret: {SECRET}", f"client_secret: {MASK}"),
    ],
)  # fmt: skip
def test_mask_text(text: str, expected: str) -> None:
    masked = mask_text(text)
    assert masked == expected
    assert SECRET not in masked


def test_mask_text_keeps_ordinary_commands() -> None:
    for cmd in [
        "ls -la /etc",
        "ssh -p 2222 host",
        "cat /etc/passwd",
        "grep -r token_count src/ | wc -l",
        "echo s1-c2; (exit 3)",
        "mysql -u root -P 3306 -p",  # -p alone: mysql prompts, nothing to hide
        "",
    ]:
        assert mask_text(cmd) == cmd


def test_mask_text_is_linear_on_long_input() -> None:
    # Bounded quantifiers: pathological inputs must not backtrack quadratically.
    nasty = ["a.-" * 100_000, "password" * 30_000, "-" * 300_000 + "token", "x=" * 150_000]
    start = time.process_time()
    for text in nasty:
        assert len(mask_text(text)) >= 5
    assert time.process_time() - start < 20  # quadratic would be hours; linear is well under a second


# --- rotate ----------------------------------------------------------------------------------------


def write(path: Path, size: int, char: str = "x") -> None:
    path.write_text(char * size)
    path.chmod(0o600)


def test_rotate_below_limit_does_nothing(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, 100)
    assert not rotate(log, 1000, 3)
    assert not rotate(log, 1000, 3, incoming=899)
    assert not rotate(tmp_path / "missing.log", 10, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.log"]


def test_rotate_shifts_and_keeps_n(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    for i in range(5):
        write(log, 100, char=str(i))
        assert rotate(log, 50, 3)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["a.log.1", "a.log.2", "a.log.3"]
    assert (tmp_path / "a.log.1").read_text() == "4" * 100  # newest first
    assert (tmp_path / "a.log.3").read_text() == "2" * 100
    assert all(os.stat(tmp_path / n).st_mode & 0o777 == 0o600 for n in names)


def test_rotate_counts_incoming_bytes(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, 100)
    assert rotate(log, 150, 1, incoming=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.log.1"]


def test_rotate_keep_zero_drops_the_file(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    write(log, 100)
    assert rotate(log, 10, 0)
    assert list(tmp_path.iterdir()) == []


def test_mask_text_prefilter_lets_every_pattern_run() -> None:
    """Each secret pattern's text passes the cheap pre-check (a miss would leave a secret)."""
    cases = [
        "curl -H 'Authorization: Bearer abc123'",
        "Cookie: sid=abc123",
        "git clone https://bob:hunter2@example.com/x",
        "export API_KEY=abc123",
        "tool --access-key abc123",
        "sshpass -p hunter2 ssh host",
        "mysql -u root -phunter2",
        "MARIADB -u root -phunter2".lower(),
        "CREATE USER x IDENTIFIED BY 'hunter2'",
        "run --credentials abc123",
    ]
    for text in cases:
        assert mask_text(text) != text, text
    assert mask_text("echo C3") == "echo C3"
