"""The audit log's hash chain: each line carries the previous line's hash and its own.

A line is a JSON object ending in `"prev":"<hex>","hash":"<hex>"}`: `prev` is the hash of the line
before it (in the same file or, after rotation, the last line of the previous file), and `hash`
is the SHA-256 of the line's text up to `,"hash"` closed with `}`. Editing, deleting, reordering
or inserting a line breaks a link that `verify` names. Someone who can rewrite the whole file can
also recompute every hash: the chain makes tampering evident, it does not make it impossible.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic_core

GENESIS = "0" * 64
_SUFFIX = re.compile(r',"hash":"([0-9a-f]{64})"\}$')
TAIL_BYTES = 256 * 1024


class _Second:
    """The text of the current second, made once a second (see `timestamp`)."""

    number = -1
    text = ""


def timestamp() -> str:
    """Now in UTC as ISO 8601 with milliseconds, as `datetime.now(UTC).isoformat(timespec=
    "milliseconds")` says it (the date and time of day formatted once a second)."""
    now = time.time()
    second = int(now)
    if second != _Second.number:
        _Second.text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _Second.number = second
    return f"{_Second.text}.{int((now - second) * 1000):03d}+00:00"


def seal(record: Mapping[str, Any], prev: str) -> tuple[bytes, str]:
    """(the line's bytes, newline included, and its hash) for `record` chained after `prev`."""
    chained = {**record, "prev": prev}
    try:
        # Compact JSON, text as UTF-8, keys in order: the bytes json.dumps below gives for the JSON
        # values an audit record holds, made in a fifth of the time.
        body = pydantic_core.to_json(chained, fallback=str)
    except pydantic_core.PydanticSerializationError:  # e.g. a lone UTF-16 surrogate
        text = json.dumps(chained, ensure_ascii=False, separators=(",", ":"), default=str)
        # The line is written with lone surrogates as their escapes: hash exactly those bytes.
        body = text.encode("utf-8", "backslashreplace")
    digest = hashlib.sha256(body).hexdigest()
    return b"".join((body[:-1], b',"hash":"', digest.encode("ascii"), b'"}\n')), digest


def unseal(line: str) -> tuple[str | None, str | None, str | None]:
    """(prev, hash, problem) of one line; problem is None when the line's own hash is right."""
    m = _SUFFIX.search(line)
    if m is None:
        return None, None, "the line carries no hash"
    body = line[: m.start()] + "}"
    if hashlib.sha256(body.encode("utf-8")).hexdigest() != m.group(1):
        return None, m.group(1), "the line's content does not match its hash (edited)"
    try:
        data = json.loads(body)
    except ValueError:
        return None, m.group(1), "the line is not valid JSON"
    prev = data.get("prev") if isinstance(data, dict) else None
    if not isinstance(prev, str):
        return None, m.group(1), "the line has no prev field"
    return prev, m.group(1), None


def chain_files(path: Path) -> list[Path]:
    """The log and its rotated files, oldest first (path.N … path.1, path)."""
    rotated = []
    for p in path.parent.glob(path.name + ".*"):
        suffix = p.name[len(path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), p))
    return [p for _, p in sorted(rotated, reverse=True)] + ([path] if path.exists() else [])


def last_hash(path: Path) -> str:
    """The hash to chain the next line to: the newest line's, across rotated files; else GENESIS."""
    for p in reversed(chain_files(path)):
        try:
            with open(p, "rb") as fh:
                fh.seek(0, 2)
                size = fh.tell()
                fh.seek(max(0, size - TAIL_BYTES))
                tail = fh.read().decode("utf-8", "replace")
        except OSError:
            continue
        for line in reversed(tail.splitlines()):
            m = _SUFFIX.search(line.strip())
            if m is not None:
                return m.group(1)
            if line.strip():
                break
    return GENESIS


@dataclass
class Report:
    ok: bool
    lines: int
    files: list[str]
    broken_file: str | None = None
    broken_line: int | None = None
    problem: str | None = None

    def text(self) -> str:
        if self.ok:
            return f"audit log intact: {self.lines} lines in {len(self.files)} file(s), every link verified"
        return f"audit log broken at {self.broken_file} line {self.broken_line}: {self.problem}"


def verify(path: Path) -> Report:
    """Check every line of the log and its rotated files; report the first broken link."""
    files = chain_files(path)
    expected: str | None = None  # the first line of the oldest file may follow a dropped file
    count = 0
    for p in files:
        with open(p, encoding="utf-8", errors="surrogateescape") as fh:
            for number, raw in enumerate(fh, 1):
                line = raw.rstrip("\n")
                if not line:
                    continue
                count += 1
                prev, digest, problem = unseal(line)
                if problem is None and expected is not None and prev != expected:
                    problem = (
                        "its prev does not match the hash of the line before (a line was removed, "
                        "inserted or edited)"
                    )
                if problem is not None:
                    return Report(False, count, [str(f) for f in files], str(p), number, problem)
                expected = digest
    return Report(True, count, [str(f) for f in files])
