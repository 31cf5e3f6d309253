"""Typed access to config.yml's `settings:` mapping (tunables; every key is optional).

Known keys (defaults in brackets):
- `audit_max_bytes` [10485760], `audit_keep` [3]: audit log rotation.
- `daemon_log_max_bytes` [10485760], `daemon_log_keep` [3]: rotation of the log an auto-started
  daemon writes (checked each time the shim starts one).
- `dead_session_max_age` [86400]: seconds a disconnected session is kept before the reaper closes
  it; 0 turns the reaper off.
- `policy` [operator]: the guard-rail policy of every connection that sets none, and of sessions
  opened with a raw destination (`admin`, `operator` or `read_only`). An invalid value is a config
  error (never a silent fallback: it would change what runs without asking).
- `approval_ttl` [600]: seconds an approval request waits for an answer before it lapses.

A missing or invalid value falls back to its default (an invalid one is logged once), so a typo
in a tunable never stops the daemon.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import structlog

log = structlog.get_logger(__name__)

DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_LOG_KEEP = 3
DEFAULT_DEAD_SESSION_MAX_AGE = 24 * 3600.0

_warned: set[tuple[str, str]] = set()


def number(settings: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    """settings[key] as a number within [low, high], else `default`."""
    raw = settings.get(key)
    if raw is None:
        return default
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            value = None
    if value is None or not math.isfinite(value) or not low <= value <= high:
        mark = (key, repr(raw))
        if mark not in _warned:
            _warned.add(mark)
            log.warning(
                "setting_ignored",
                key=key,
                value=repr(raw)[:100],
                expected=f"{low:g}..{high:g}",
                default=default,
            )
        return default
    return value


def rotation(settings: Mapping[str, Any], prefix: str) -> tuple[int, int]:
    """(max_bytes, keep) for the log named by `prefix` (`audit` or `daemon_log`)."""
    max_bytes = number(settings, f"{prefix}_max_bytes", DEFAULT_LOG_MAX_BYTES, 4096, 2**40)
    keep = number(settings, f"{prefix}_keep", DEFAULT_LOG_KEEP, 0, 100)
    return int(max_bytes), int(keep)


def dead_session_max_age(settings: Mapping[str, Any]) -> float:
    """Seconds a disconnected session is kept before the reaper closes it (0: never)."""
    return number(settings, "dead_session_max_age", DEFAULT_DEAD_SESSION_MAX_AGE, 0, 10 * 365 * 86400)


DEFAULT_POLICY = "operator"
DEFAULT_APPROVAL_TTL = 600.0


def default_policy(settings: Mapping[str, Any]) -> str:
    """`settings.policy` (validated by the config loader), else `operator`."""
    value = settings.get("policy")
    return value if value in ("admin", "operator", "read_only") else DEFAULT_POLICY


def approval_ttl(settings: Mapping[str, Any]) -> float:
    """Seconds an approval request stays open."""
    return number(settings, "approval_ttl", DEFAULT_APPROVAL_TTL, 1, 86400)
