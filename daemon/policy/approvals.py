"""The approvals store: requests waiting for a person, and the grants their answers make.

An approval is bound to its key: (kind, session, host, exact text, class). It lives in the
daemon's memory only: a daemon restart drops every open request and grant, which fails closed.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from sshkeep.common.errors import ApprovalClosed, ApprovalNotFound
from sshkeep.common.models.policy import Approval, ApprovalRoute, CommandClass, Grant

Key = tuple[str, str, str, str, str]  # kind, session_id, host, exact text, class
MAX_CLOSED = 500  # answered or lapsed requests kept for `sshkeep approvals`


@dataclass
class Entry:
    key: Key
    approval: Approval


class ApprovalStore:
    def __init__(self) -> None:
        self._items: dict[str, Entry] = {}

    def create(
        self, key: Key, operation: str, cls: CommandClass, reason: str, ttl: float, now: float | None = None
    ) -> Approval:
        now = time.time() if now is None else now
        aid = "a" + secrets.token_hex(6)
        _, sid, host, text, _ = key
        approval = Approval(
            approval_id=aid,
            session_id=sid,
            host=host,
            operation=operation,
            command=text,
            command_class=cls,
            reason=reason,
            state="pending",
            created_at=now,
            expires_at=now + ttl,
        )
        self._items[aid] = Entry(key, approval)
        self._prune()
        return approval

    def find_pending(self, key: Key, now: float | None = None) -> Approval | None:
        now = time.time() if now is None else now
        for e in self._items.values():
            if e.key == key and e.approval.state == "pending" and e.approval.expires_at > now:
                return e.approval
        return None

    def find_grant(self, key: Key, now: float | None = None) -> Approval | None:
        now = time.time() if now is None else now
        for e in self._items.values():
            a = e.approval
            if e.key == key and a.state == "approved" and (a.grant_until or 0) > now:
                return a
        return None

    def use(self, approval: Approval) -> None:
        if approval.grant == "once":
            approval.state = "used"

    def get(self, approval_id: str) -> Approval:
        e = self._items.get(approval_id)
        if e is None:
            raise ApprovalNotFound(f"no approval request {approval_id!r}")
        return e.approval

    def answer(
        self,
        approval_id: str,
        approve: bool,
        by: str,
        route: ApprovalRoute,
        grant: Grant = "once",
        grant_seconds: float = 600.0,
        ttl: float = 600.0,
        now: float | None = None,
    ) -> Approval:
        now = time.time() if now is None else now
        a = self.get(approval_id)
        if a.state == "pending" and a.expires_at <= now:
            a.state = "expired"
        if a.state != "pending":
            raise ApprovalClosed(f"approval request {approval_id} is {a.state}, not pending")
        a.decided_by, a.route = by, route
        if approve:
            a.state, a.grant = "approved", grant
            a.grant_until = now + (grant_seconds if grant == "timed" else ttl)
        else:
            a.state = "declined"
        return a

    def expire(self, now: float | None = None) -> list[Approval]:
        """Pending requests past their time become `expired` (returned); lapsed grants close."""
        now = time.time() if now is None else now
        lapsed = []
        for e in self._items.values():
            a = e.approval
            if a.state == "pending" and a.expires_at <= now:
                a.state = "expired"
                lapsed.append(a)
            elif a.state == "approved" and (a.grant_until or 0) <= now:
                a.state = "expired"
        return lapsed

    def all(self) -> list[Approval]:
        return sorted((e.approval for e in self._items.values()), key=lambda a: a.created_at)

    def _prune(self) -> None:
        closed = [aid for aid, e in self._items.items() if e.approval.state not in ("pending", "approved")]
        for aid in closed[: max(0, len(closed) - MAX_CLOSED)]:
            del self._items[aid]
