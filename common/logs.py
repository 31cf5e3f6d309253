"""Logging set-up: structlog JSON lines on stderr (stdout is the MCP protocol), secrets masked."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

SECRET_KEYS = re.compile(r"pass(word|phrase)?|secret|token|authorization|askpass", re.IGNORECASE)
MASK = "***"


def redact(_logger: object, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask values whose key looks secret, at any depth of dicts."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: (MASK if SECRET_KEYS.search(str(k)) else clean(v)) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [clean(v) for v in obj]
        return obj

    for key in list(event.keys()):
        if SECRET_KEYS.search(key):
            event[key] = MASK
        else:
            event[key] = clean(event[key])
    return event


def configure_logging(level: str = "INFO", stream: TextIO | None = None) -> None:
    out = stream if stream is not None else sys.stderr
    logging.basicConfig(stream=out, level=getattr(logging, level.upper(), logging.INFO), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper(), logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
