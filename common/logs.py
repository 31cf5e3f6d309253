"""Logging set-up: structlog JSON lines on stderr (stdout is the MCP protocol), secrets masked."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from sshkeep.common.paths import Paths

SECRET_KEYS = re.compile(
    r"pass(word|wd|phrase)?|secret|token|authorization|askpass|api[_-]?key|credential|cookie",
    re.IGNORECASE,
)
MASK = "***"

# Secrets inside free text (command lines, messages). Quantifiers are bounded so that a long
# input costs linear time. Each pattern keeps group `key` and replaces group `val` by MASK.
_WORD = r"(?:pass(?:word|wd|phrase)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)"
_VALUE = r"""(?P<val>"[^"\n]{0,4096}"|'[^'\n]{0,4096}'|[^\s"'&;|,}]+)"""
_TEXT_SECRETS = [
    # Authorization: Bearer xyz / Proxy-Authorization / Cookie headers
    re.compile(
        r"(?P<key>\b(?:proxy-)?(?:authorization|cookie)\s{0,8}[:=]\s{0,8}"
        r"(?:(?:bearer|basic|digest|token|negotiate)\s{1,8})?)"
        r"(?P<val>[^\s\"']+)",
        re.IGNORECASE,
    ),
    # scheme://user:secret@host
    re.compile(
        r"(?P<key>\b[a-z][a-z0-9+.-]{0,20}://[^/\s:@'\"]{1,256}:)(?P<val>[^@\s/'\"]{1,256})(?=@)", re.I
    ),
    # PASSWORD=x, db.password: x, "token": "x", --api-key=x
    re.compile(rf"(?P<key>\b[\w.-]{{0,40}}{_WORD}[\w.-]{{0,40}}[\"']?\s{{0,8}}[=:]\s{{0,8}}){_VALUE}", re.I),
    # --password x, -token x
    re.compile(rf"(?P<key>(?<![\w-])--?[\w-]{{0,40}}{_WORD}[\w-]{{0,40}}\s{{1,8}}){_VALUE}", re.I),
    # sshpass -p x; mysql -px (case-sensitive: -P is a port)
    re.compile(r"(?P<key>\bsshpass\s{1,8}-p\s{0,8})(?P<val>\S+)"),
    re.compile(r"(?P<key>\b(?:mysql|mysqldump|mysqladmin|mariadb)\b[^\n;|&]{0,512}?\s-p)(?P<val>[^\s'\"]+)"),
    # SQL: IDENTIFIED BY 'x' / PASSWORD 'x'
    re.compile(
        r"(?P<key>\b(?:identified\s{1,8}by|password)\s{1,8})"
        r"(?P<val>'[^'\n]{0,4096}'|\"[^\"\n]{0,4096}\")",
        re.I,
    ),
]


# A word every pattern above needs (a superset: a hit only means the patterns run). Most text
# (an `echo`, a path) holds none, and one search costs less than the seven substitutions.
_MAYBE_SECRET = re.compile(
    r"authorization|cookie|://|pass|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential"
    r"|mysql|mariadb|identified",
    re.I,
)


def mask_text(text: str) -> str:
    """`text` with the values of password/token/authorization-like assignments replaced by ***."""
    if not text or _MAYBE_SECRET.search(text) is None:
        return text
    for pattern in _TEXT_SECRETS:
        text = pattern.sub(lambda m: m.group("key") + MASK, text)
    return text


def mask_words(items: list[str]) -> list[str]:
    """`mask_text` for an argv-like list: also masks an item that a previous one marks as secret."""
    out: list[str] = []
    for i, item in enumerate(items):
        masked = mask_text(item)
        if masked == item and i > 0:
            # e.g. ["--password", "x"] or ["sshpass", "-p", "x"]: judge the item with its lead-in.
            joined = " ".join(items[max(0, i - 2) : i + 1])
            if mask_text(joined).endswith(" " + MASK):
                masked = MASK
        out.append(masked)
    return out


def redact(_logger: object, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask values whose key looks secret, at any depth, and secrets inside every string."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, str):
            return mask_text(obj)
        if isinstance(obj, dict):
            return {k: (MASK if SECRET_KEYS.search(str(k)) else clean(v)) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            if obj and all(isinstance(v, str) for v in obj):
                return mask_words(list(obj))
            return [clean(v) for v in obj]
        return obj

    for key in list(event.keys()):
        if SECRET_KEYS.search(key):
            event[key] = MASK
        else:
            event[key] = clean(event[key])
    return event


class Unfailing:
    """A text stream whose writes never raise: a full disk under the daemon's own log must not turn
    a log call into a failed request or a dead scan."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError):
            return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    out: TextIO = stream if stream is not None else Unfailing(sys.stderr)  # type: ignore[assignment]
    logging.basicConfig(stream=out, level=getattr(logging, level.upper(), logging.INFO), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact,  # after format_exc_info, so tracebacks are masked too
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )


def rotate(path: Path, max_bytes: int, keep: int, incoming: int = 0) -> bool:
    """Rotate `path` when it holds `max_bytes` or more (after adding `incoming` more bytes).

    `path` becomes `path.1`, `path.1` becomes `path.2` … and the oldest beyond `keep` is removed;
    `keep=0` just drops the file. Modes are kept (rename). Returns whether it rotated.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return False
    if max_bytes <= 0 or size == 0 or size + incoming < max_bytes:
        return False
    oldest = path.with_name(f"{path.name}.{keep}") if keep > 0 else path
    with contextlib.suppress(FileNotFoundError):
        oldest.unlink()
    for i in range(keep - 1, 0, -1):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path.with_name(f"{path.name}.{i}"), path.with_name(f"{path.name}.{i + 1}"))
    if keep > 0:
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, path.with_name(f"{path.name}.1"))
    return True


def rotate_daemon_log(paths: Paths) -> bool:
    """Rotate `paths.daemon_log` by config.yml's `daemon_log_*` settings (before a daemon appends to it)."""
    from sshkeep.common.config import load_config  # config.yml parsing: only when a daemon starts

    max_bytes, keep = load_config(paths.config_file).tunables.daemon_log_rotation
    return rotate(paths.daemon_log, max_bytes, keep)
