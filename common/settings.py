"""config.yml's `settings:` mapping, parsed and bounded in one place (tunables; every key optional).

Keys (default, accepted range):
- `log_cap_mb` (256, 0.01..1048576): per-session output log cap; older bytes are dropped.
- `max_transfer_mb` (64, 0.001..65536): largest file read or write.
- `dead_session_max_age` (86400, 0..315360000): seconds a disconnected session is kept before the
  reaper closes it; 0 turns the reaper off.
- `finished_job_max_age` (86400, 0..315360000): seconds a finished job (its output, exit code and
  terminal) is kept before the reaper removes it; 0 keeps them until cleanup_dead_sessions.
- `audit_max_bytes` (10485760, 4096..2**40), `audit_keep` (3, 0..100): audit log rotation.
- `daemon_log_max_bytes` (10485760, 4096..2**40), `daemon_log_keep` (3, 0..100): rotation of the
  log an auto-started daemon writes (checked each time the shim starts one).
- `max_local_transfer_mb` (4096, 1..1048576): largest file copied to or from a local path (streamed).
- `mcp_max_wait_seconds` (600, 50..600): longest wait an MCP call with a progress token may ask for.
- `local_roots` (a list of directories; default: only `downloads/` in the state directory): where
  local paths of file transfers and saved output may lie.
- `approval_ttl` (600, 1..86400): seconds an approval request of the guard rails waits for an
  answer before it lapses.
- `policy` (operator; admin, operator or read_only): the guard-rail policy of every connection that
  sets none, and of sessions opened with a raw destination. Not a tunable: an invalid value is a
  config error (config.py), never a silent fallback, since it changes what runs without asking.

A missing value takes its default. An invalid one (not a number, out of range) or an unknown key
is logged once with a message naming the key (`settings.log_cap_mb: ...`) and the default applies,
so a typo in a tunable never stops the daemon. Consumers read typed values from `Settings`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import structlog

log = structlog.get_logger(__name__)

MB = 1024 * 1024
_warned: set[str] = set()


@dataclass(frozen=True)
class _Bound:
    default: float
    low: float
    high: float
    integer: bool = False


_BOUNDS: dict[str, _Bound] = {
    "log_cap_mb": _Bound(256, 0.01, 1024 * 1024),
    "max_transfer_mb": _Bound(64, 0.001, 64 * 1024),
    "dead_session_max_age": _Bound(24 * 3600, 0, 10 * 365 * 86400),
    "finished_job_max_age": _Bound(24 * 3600, 0, 10 * 365 * 86400),
    "audit_max_bytes": _Bound(10 * MB, 4096, 2**40, integer=True),
    "audit_keep": _Bound(3, 0, 100, integer=True),
    "daemon_log_max_bytes": _Bound(10 * MB, 4096, 2**40, integer=True),
    "daemon_log_keep": _Bound(3, 0, 100, integer=True),
    "approval_ttl": _Bound(600, 1, 86400),
    "max_local_transfer_mb": _Bound(4096, 1, 1024 * 1024),
    "mcp_max_wait_seconds": _Bound(600, 50, 600),
}
POLICIES = ("admin", "operator", "read_only")
DEFAULT_POLICY = "operator"
# Settings that are not numbers: the policy (validated by the config loader) and local_roots.
_OTHER_KEYS = ("policy", "local_roots")


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        log.warning("setting_ignored", problem=message)


def _number(key: str, raw: Any, bound: _Bound) -> tuple[float, str | None]:
    """(value, problem): `raw` within the key's bounds, else the default and why."""
    if raw is None:
        return bound.default, None
    value: float | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    elif isinstance(raw, str):
        try:
            value = float(raw.strip())
        except ValueError:
            value = None
    if value is None or not math.isfinite(value) or not bound.low <= value <= bound.high:
        expected = f"a number between {bound.low:g} and {bound.high:g}"
        return bound.default, (
            f"settings.{key}: {repr(raw)[:100]} is not {expected}; using the default {bound.default:g}"
        )
    return value, None


@dataclass(frozen=True)
class Settings:
    """Every tunable of config.yml's `settings:`, typed and within its bounds."""

    log_cap_mb: float = _BOUNDS["log_cap_mb"].default
    max_transfer_mb: float = _BOUNDS["max_transfer_mb"].default
    dead_session_max_age: float = _BOUNDS["dead_session_max_age"].default
    finished_job_max_age: float = _BOUNDS["finished_job_max_age"].default
    audit_max_bytes: int = int(_BOUNDS["audit_max_bytes"].default)
    audit_keep: int = int(_BOUNDS["audit_keep"].default)
    daemon_log_max_bytes: int = int(_BOUNDS["daemon_log_max_bytes"].default)
    daemon_log_keep: int = int(_BOUNDS["daemon_log_keep"].default)
    max_local_transfer_mb: float = _BOUNDS["max_local_transfer_mb"].default
    mcp_max_wait_seconds: float = _BOUNDS["mcp_max_wait_seconds"].default
    local_roots: tuple[str, ...] = ()  # empty: the default downloads directory only
    approval_ttl: float = _BOUNDS["approval_ttl"].default
    policy: str = DEFAULT_POLICY  # admin | operator | read_only
    problems: tuple[str, ...] = ()  # what was wrong with the mapping, one message per key

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Settings:
        """The typed settings of a `settings:` mapping; each problem is logged once."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for key, bound in _BOUNDS.items():
            value, problem = _number(key, raw.get(key), bound)
            values[key] = int(value) if bound.integer else value
            if problem is not None:
                problems.append(problem)
        roots = raw.get("local_roots")
        if isinstance(roots, list) and all(isinstance(r, str) and r.strip() for r in roots):
            values["local_roots"] = tuple(r.strip() for r in roots)
        elif roots is not None:
            problems.append(
                f"settings.local_roots: {repr(roots)[:100]} is not a list of directories; using the "
                "downloads directory only"
            )
        for key in raw:
            if key not in _BOUNDS and key not in _OTHER_KEYS:
                known = ", ".join([*_BOUNDS, *_OTHER_KEYS])
                problems.append(f"settings.{key}: unknown setting (known: {known})")
        for problem in problems:
            _warn_once(problem)
        policy = raw.get("policy")
        values["policy"] = policy if policy in POLICIES else DEFAULT_POLICY
        return cls(**values, problems=tuple(problems))

    @property
    def log_cap_bytes(self) -> int:
        return int(self.log_cap_mb * MB)

    @property
    def max_transfer_bytes(self) -> int:
        return int(self.max_transfer_mb * MB)

    @property
    def max_local_transfer_bytes(self) -> int:
        return int(self.max_local_transfer_mb * MB)

    @property
    def audit_rotation(self) -> tuple[int, int]:
        """(max_bytes, keep) of the audit log."""
        return self.audit_max_bytes, self.audit_keep

    @property
    def daemon_log_rotation(self) -> tuple[int, int]:
        """(max_bytes, keep) of the log an auto-started daemon writes."""
        return self.daemon_log_max_bytes, self.daemon_log_keep


if {f.name for f in fields(Settings)} - {"problems", *_OTHER_KEYS} != set(_BOUNDS):
    raise ImportError("common/settings.py: the fields of Settings and _BOUNDS disagree")
