"""The person's side of the guard rails: `sshkeep approvals`, `approve ID`, `decline ID`,
and `sshkeep audit verify` (checks the audit log's hash chain)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from sshkeep.common import auditchain
from sshkeep.common.client import ApiClient
from sshkeep.common.errors import SshkeepError
from sshkeep.common.models.policy import Approval, ApproveRequest, DeclineRequest
from sshkeep.common.paths import resolve_paths


def _row(a: Approval, now: float) -> str:
    left = a.expires_at - now if a.state == "pending" else (a.grant_until or now) - now
    when = f"{max(0, int(left))}s left" if a.state in ("pending", "approved") else a.state
    answered = f" by {a.decided_by} via {a.route}" if a.decided_by else ""
    return (
        f"{a.approval_id}  {a.state:<8}  {a.command_class:<11}  {a.session_id} ({a.host})  {when}{answered}\n"
        f"    {a.operation}: {a.command}\n    why: {a.reason}"
    )


async def _approvals(as_json: bool, every: bool) -> int:
    paths = resolve_paths()
    async with ApiClient(paths.socket, timeout=30) as client:
        listing = await client.list_approvals()
    if as_json:
        print(listing.model_dump_json())
        return 0
    shown = [a for a in listing.approvals if every or a.state in ("pending", "approved")]
    if not shown:
        print("no open approval requests" + ("" if every else " (--all shows answered ones)"))
        return 0
    now = time.time()
    print("\n".join(_row(a, now) for a in shown))
    if any(a.state == "pending" for a in shown):
        print("\napprove: sshkeep approve ID [--for SECONDS]    decline: sshkeep decline ID")
    return 0


async def _answer(approval_id: str, approve: bool, seconds: float | None) -> int:
    paths = resolve_paths()
    async with ApiClient(paths.socket, timeout=30) as client:
        if approve:
            req = (
                ApproveRequest(grant="timed", grant_seconds=seconds, route="cli")
                if seconds
                else ApproveRequest(route="cli")
            )
            a = await client.approve(approval_id, req)
        else:
            a = await client.decline(approval_id, DeclineRequest(route="cli"))
    if approve:
        span = f"until {time.strftime('%H:%M:%S', time.localtime(a.grant_until or 0))}"
        how = f"every run {span}" if a.grant == "timed" else f"the next run ({span})"
        print(f"approved {a.approval_id}: {a.command!r} in {a.session_id} may run, {how}")
    else:
        print(f"declined {a.approval_id}: {a.command!r} stays refused")
    return 0


def _verify() -> int:
    report = auditchain.verify(resolve_paths().audit_log)
    print(report.text(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1


def main(args: argparse.Namespace) -> int:
    try:
        if args.cmd == "approvals":
            return asyncio.run(_approvals(args.json, args.all))
        if args.cmd == "approve":
            return asyncio.run(_answer(args.approval_id, True, args.seconds))
        if args.cmd == "decline":
            return asyncio.run(_answer(args.approval_id, False, None))
        return _verify()
    except SshkeepError as err:
        print(f"sshkeep {args.cmd}: {err.message}\n{err.hint}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"sshkeep {args.cmd}: {exc}", file=sys.stderr)
        return 1
