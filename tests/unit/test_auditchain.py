"""The audit log's hash chain: sealing, verifying, rotation, and the links tampering breaks."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime
from pathlib import Path

from sshkeep.common import auditchain
from sshkeep.common.settings import Settings
from sshkeep.daemon.api.audit import AuditLog


def _write(path: Path, n: int, settings: dict[str, object] | None = None) -> None:
    parsed = Settings.parse(settings or {})
    log = AuditLog(path, lambda: parsed)

    async def go() -> None:
        for i in range(n):
            await log.write({"n": i, "pad": "x" * 200})

    try:
        asyncio.run(go())
    finally:
        log.close()


def test_a_fresh_chain_verifies_and_continues_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 5)
    _write(path, 5)  # a new AuditLog (daemon restart) chains on to the last line
    report = auditchain.verify(path)
    assert report.ok and report.lines == 10, report.text()
    first = json.loads(path.read_text().splitlines()[0])
    assert first["prev"] == auditchain.GENESIS


def test_rotation_keeps_the_chain_verifiable_across_files(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 60, {"audit_max_bytes": 4096, "audit_keep": 3})
    files = auditchain.chain_files(path)
    assert len(files) >= 3
    report = auditchain.verify(path)
    assert report.ok, report.text()
    # The newest file's first line chains to the last line of the file rotated before it.
    last_of_previous = files[-2].read_text().splitlines()[-1]
    assert json.loads(path.read_text().splitlines()[0])["prev"] == json.loads(last_of_previous)["hash"]


def test_edits_deletions_and_insertions_name_the_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    _write(path, 6)
    original = path.read_text().splitlines(keepends=True)

    edited = list(original)
    edited[2] = edited[2].replace('"n":2', '"n":7')
    path.write_text("".join(edited))
    report = auditchain.verify(path)
    assert not report.ok and report.broken_line == 3 and "edited" in (report.problem or "")

    path.write_text("".join(original[:3] + original[4:]))
    report = auditchain.verify(path)
    assert not report.ok and report.broken_line == 4 and "prev" in (report.problem or "")

    path.write_text("".join([*original[:2], '{"n":99}\n', *original[2:]]))
    report = auditchain.verify(path)
    assert not report.ok and report.broken_line == 3 and "no hash" in (report.problem or "")

    path.write_text("".join(original))
    assert auditchain.verify(path).ok


def test_a_line_is_compact_json_in_utf8_and_a_lone_surrogate_stays_its_escape(tmp_path: Path) -> None:
    record = {"ts": "t", "params": {"command": "echo ü \u2028 \x00\t\"'\\"}, "n": 1, "ms": 0.5, "x": None}
    line, digest = auditchain.seal(record, auditchain.GENESIS)
    text = json.dumps({**record, "prev": auditchain.GENESIS}, ensure_ascii=False, separators=(",", ":"))
    assert line == (text[:-1] + f',"hash":"{digest}"}}\n').encode()
    odd, _ = auditchain.seal({"command": "a\ud800b"}, digest)
    assert b'"a\\ud800b"' in odd
    path = tmp_path / "audit.log"
    path.write_bytes(line + odd)
    report = auditchain.verify(path)
    assert report.ok and report.lines == 2, report.text()


def test_timestamp_reads_as_datetimes_own_iso_form() -> None:
    before = datetime.now(UTC)
    text = auditchain.timestamp()
    after = datetime.now(UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", text), text
    assert (
        before.replace(microsecond=before.microsecond // 1000 * 1000) <= datetime.fromisoformat(text) <= after
    )
