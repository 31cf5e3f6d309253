"""The guard service: one place that decides whether something may run in a session.

Every entry point (send_command, exec_command, write_remote_file, send_keys, and jobs through
`check_command`) asks the guard first. The guard finds the session's policy in config.yml (never
in a request: no API call can loosen it), classifies the command from its parse tree, applies
the connection's rules and answers allow, ask or refuse. An ask opens an approval request bound
to the exact text, session, host and class; a person answers it (`sshkeep approve ID`, HTTP, or
an MCP elicitation form) and the retried call then runs. Every decision is written to the audit
log through the writer the app attaches.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from sshkeep.common.auditchain import timestamp
from sshkeep.common.config import LoadedConfig
from sshkeep.common.errors import ApprovalRequired, PolicyRefused, TmuxError
from sshkeep.common.logs import mask_text
from sshkeep.common.models.policy import (
    Approval,
    ApprovalNeeded,
    ApprovalRoute,
    CheckResult,
    CommandClass,
    CommandPartInfo,
    Grant,
    PolicyName,
    Verdict,
)
from sshkeep.common.terminal.keys import is_key_name
from sshkeep.daemon.policy.approvals import ApprovalStore, Key
from sshkeep.daemon.policy.classify import Classification, Part, classify
from sshkeep.daemon.policy.rules import Outcome, Rules, decide, decide_file_write
from sshkeep.daemon.sessions.manager import SessionManager
from sshkeep.daemon.sessions.session import Session

log = structlog.get_logger(__name__)

Writer = Callable[[Mapping[str, Any]], Awaitable[None]]

THREAD_THRESHOLD = 4096  # characters: longer lines are parsed off the event loop
SWEEP_SECONDS = 2.0
ENTER_KEYS = frozenset({"Enter", "KPEnter", "C-m", "C-j", "^M", "^J"})
CLEAR_KEYS = frozenset({"C-c", "C-u", "^C", "^U"})
ERASE_KEYS = frozenset({"BSpace", "C-h", "^H"})
# Questions a key press answers (anything else at a prompt is typing a command line).
ANSWER_KINDS = frozenset({"password", "passphrase", "host_key", "confirm", "otp"})
MAX_TEXT = 4096


@dataclass
class KeyLine:
    """What keys typed at the shell prompt have put on the command line so far."""

    text: str = ""
    opaque: bool = False  # edited with keys sshkeep cannot follow (Tab, Up, Left …)

    def shown(self) -> str:
        return self.text


@dataclass
class Decision:
    session_id: str
    host: str
    policy: PolicyName
    operation: str
    subject: str  # the exact text the decision (and an approval) is bound to
    command_class: CommandClass
    reason: str
    verdict: Verdict
    rule: str | None = None
    granted: bool = False
    approval: ApprovalNeeded | None = None
    parts: list[Part] = field(default_factory=list)
    next_line: KeyLine | None = None  # send_keys: the command line after these keys

    @property
    def allowed(self) -> bool:
        return self.verdict == "allow" or self.granted

    def raise_unless_allowed(self) -> None:
        """PolicyRefused or ApprovalRequired unless the thing may run now."""
        if self.allowed:
            return
        if self.verdict == "refuse":
            raise PolicyRefused(f"policy {self.policy} of {self.host} refuses this ({self.reason})")
        assert self.approval is not None
        raise ApprovalRequired(
            f"policy {self.policy} of {self.host} asks a person first ({self.reason}); nothing was run. "
            f"Approval {self.approval.approval_id} expires in "
            f"{max(0, int(self.approval.expires_at - time.time()))}s.",
            hint=self.approval.hint,
            approval_id=self.approval.approval_id,
        )

    def audit_fields(self) -> dict[str, Any]:
        """What the request's own audit line says about the decision."""
        return {
            "policy": self.policy,
            "class": self.command_class,
            "reason": _clip(self.reason, 500),
            **({"rule": self.rule} if self.rule else {}),
            **({"approval_id": self.approval.approval_id} if self.approval else {}),
        }

    @property
    def audit_decision(self) -> str:
        if self.granted:
            return "approved"
        return {"allow": "allowed", "ask": "asked", "refuse": "refused"}[self.verdict]


def approval_hint(aid: str) -> str:
    return (
        f"A person approves with `sshkeep approve {aid}` (or declines with `sshkeep decline {aid}`), "
        "then the same call runs it. Nothing was typed."
    )


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) > limit:
        return mask_text(text[:limit]) + f"… [{len(text)} chars]"
    return mask_text(text)


class Guard:
    """Held by the app (an AppKey in daemon/api/core.py); built by daemon/server.py."""

    def __init__(self, manager: SessionManager) -> None:
        self.m = manager
        self.approvals = ApprovalStore()
        self._writer: Writer | None = None
        self._lines: dict[str, KeyLine] = {}
        self._changed = asyncio.Event()
        # The policy of each connection (None: sessions without one) in the config reading
        # `_policies_of`: the same until config.yml changes.
        self._policies_of: LoadedConfig | None = None
        self._policies: dict[str | None, tuple[PolicyName, Rules, str]] = {}

    def attach_audit(self, writer: Writer) -> None:
        self._writer = writer

    # --- policy of a session ---

    def policy_for(self, s: Session) -> tuple[PolicyName, Rules, str]:
        """(policy, rules, where it comes from). Only config.yml decides."""
        cfg = self.m.config.current()
        if cfg is not self._policies_of:  # a new reading of config.yml: judge every session anew
            self._policies_of, self._policies = cfg, {}
        found = self._policies.get(s.connection)
        if found is None:
            found = self._policies[s.connection] = self._policy_in(cfg, s)
        return found

    @staticmethod
    def _policy_in(cfg: LoadedConfig, s: Session) -> tuple[PolicyName, Rules, str]:
        if s.connection is not None:
            conn = cfg.connections.get(s.connection)
            if conn is None:
                return "read_only", Rules(), f"connection {s.connection!r} is missing or broken in config.yml"
            if conn.policy is not None:
                return conn.policy, Rules.of(conn), f"connections.{conn.name}.policy"
            return _policy(cfg.tunables.policy), Rules.of(conn), "settings.policy"
        if cfg.file_error is not None:
            return "read_only", Rules(), "config.yml is broken"
        return _policy(cfg.tunables.policy), Rules(), "settings.policy"

    def ttl(self) -> float:
        return self.m.config.current().tunables.approval_ttl

    async def classify(self, text: str) -> Classification:
        if len(text) > THREAD_THRESHOLD:
            return await asyncio.to_thread(classify, text)
        return classify(text)

    # --- entry points ---

    async def check_command(
        self,
        session_id: str,
        command: str,
        *,
        operation: str = "send_command",
        by: str | None = None,
        dry_run: bool = False,
    ) -> Decision:
        """The one entry for anything that runs a command line (send_command, exec_command, jobs).

        Returns the decision; call `decision.raise_unless_allowed()` to stop there. Not a dry run:
        an ask opens (or finds) an approval request, and an approval in force is used up.
        """
        s = self.m.get(session_id)
        policy, rules, _ = self.policy_for(s)
        typed = operation == "send_command"
        pending = self._lines.get(session_id) if typed else None
        text = command
        if pending is not None and (pending.text or pending.opaque):
            # Keys typed before (without Enter) are still on the line: the shell runs both.
            text = pending.text + command
        if policy == "admin" and rules.empty:
            outcome = Outcome("allow", "unknown", "policy admin runs everything")
        elif pending is not None and pending.opaque:
            outcome = _opaque_outcome(policy, text)
        else:
            outcome = decide(policy, rules, await self.classify(text))
        return await self._finish(s, policy, operation, "command", text, outcome, by, dry_run)

    async def check_file_write(
        self, session_id: str, path: str, content: str, append: bool, *, by: str | None = None
    ) -> Decision:
        s = self.m.get(session_id)
        policy, rules, _ = self.policy_for(s)
        outcome = decide_file_write(policy, rules, path)
        digest = hashlib.sha256(content.encode("utf-8", "surrogateescape")).hexdigest()
        subject = f"{'append to' if append else 'write'} {path} (sha256 {digest}, {len(content)} chars)"
        return await self._finish(s, policy, "write_remote_file", "file", subject, outcome, by, False)

    async def check_keys(
        self, session_id: str, keys: list[str], *, by: str | None = None, terminal: str | None = None
    ) -> Decision:
        """Keys answer a question or drive a full-screen program freely (read_only: only that);
        at a shell prompt they are buffered and each line an Enter completes is checked. The context
        (question, full-screen program) is the terminal's the keys go to."""
        s = self.m.terminal(session_id, terminal)
        policy, rules, _ = self.policy_for(s)
        subject = " ".join(repr(k) if not is_key_name(k) else k for k in keys if k)
        if policy == "admin" and rules.empty:
            return Decision(s.id, s.target, policy, "send_keys", subject, "unknown", "policy admin", "allow")
        context = await self._key_context(s)
        if context in ("answer", "fullscreen"):
            what = "answer a pending question" if context == "answer" else "drive a full-screen program"
            if (
                policy == "read_only"
                and context == "fullscreen"
                and any(k and not is_key_name(k) and len(k) > 1 for k in keys)
            ):
                outcome = Outcome(
                    "refuse", "unknown", "read_only: only single keys may drive a full-screen program"
                )
            else:
                outcome = Outcome("allow", "read", f"read: the keys {what}")
            return await self._finish(s, policy, "send_keys", "keys", subject, outcome, by, False)
        if policy == "read_only":
            outcome = Outcome(
                "refuse",
                "unknown",
                "read_only: send_keys may only answer a pending question or drive a full-screen program; "
                "run read commands with send_command",
            )
            return await self._finish(s, policy, "send_keys", "keys", subject, outcome, by, False)
        line = KeyLine(**vars(self._lines.get(s.id, KeyLine())))
        completed: list[KeyLine] = []
        for item in keys:
            if not item:
                continue
            if not is_key_name(item):
                line.text += item
            elif item in ENTER_KEYS:
                completed.append(line)
                line = KeyLine()
            elif item in CLEAR_KEYS:
                line = KeyLine()
            elif item in ERASE_KEYS and not line.opaque:
                line.text = line.text[:-1]
            elif item == "Space":
                line.text += " "
            else:
                line.opaque = True
                line.text += f"<{item}>"
        worst: Decision | None = None
        for done in completed:
            if not done.text.strip() and not done.opaque:
                continue
            if done.opaque:
                outcome = _opaque_outcome(policy, done.text)
            else:
                outcome = decide(policy, rules, await self.classify(done.text))
            d = await self._finish(s, policy, "send_keys", "keys", done.text, outcome, by, False)
            if worst is None or _rank(d) > _rank(worst):
                worst = d
            if not d.allowed:
                break
        if worst is None:
            worst = Decision(
                s.id, s.target, policy, "send_keys", subject, "read", "no line completed", "allow"
            )
        worst.next_line = line
        return worst

    def keys_sent(self, decision: Decision) -> None:
        """The keys of an allowed send_keys went out: the command line is what they left."""
        if decision.next_line is not None:
            self._lines[decision.session_id] = decision.next_line

    def line_reset(self, session_id: str) -> None:
        """A command was typed with Enter, or Ctrl-C cleared the line."""
        self._lines.pop(session_id, None)

    async def dry_run(self, session_id: str, command: str) -> CheckResult:
        d = await self.check_command(session_id, command, operation="check_command", dry_run=True)
        if (
            d.verdict == "allow"
            and d.command_class == "unknown"
            and d.reason == "policy admin runs everything"
        ):
            c = await self.classify(command)
            d.command_class, d.reason, d.parts = c.cls, f"{c.cls}: {c.reason} (policy admin runs it)", c.parts
        hint = {
            "allow": "send_command runs it without asking.",
            "ask": "send_command will return approval_required; a person approves with `sshkeep approve ID`.",
            "refuse": "send_command will refuse it; only config.yml can change the policy.",
        }[d.verdict]
        if d.granted:
            hint = "An approval for this exact command is in force: send_command runs it."
        return CheckResult(
            session_id=d.session_id,
            host=d.host,
            policy=d.policy,
            command_class=d.command_class,
            reason=d.reason,
            decision=d.verdict,
            rule=d.rule,
            granted=d.granted,
            parts=[
                CommandPartInfo(command=" ".join(p.words), command_class=p.cls, reason=p.reason)
                for p in d.parts[:50]
            ],
            hint=hint,
        )

    # --- answers ---

    def list(self) -> list[Approval]:
        return self.approvals.all()

    async def approve(
        self, approval_id: str, grant: Grant, grant_seconds: float, route: ApprovalRoute, by: str
    ) -> Approval:
        await self.sweep()
        a = self.approvals.answer(approval_id, True, by, route, grant, grant_seconds, self.ttl())
        await self._audit("approved", a, by=by, route=route, grant=grant, grant_until=a.grant_until)
        return a

    async def decline(self, approval_id: str, route: ApprovalRoute, by: str) -> Approval:
        await self.sweep()
        a = self.approvals.answer(approval_id, False, by, route)
        await self._audit("declined", a, by=by, route=route)
        return a

    async def sweep(self) -> None:
        for a in self.approvals.expire():
            await self._audit("expired", a)

    async def sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            try:
                await self.sweep()
            except Exception:
                log.exception("approval_sweep_failed")

    # --- internals ---

    async def _finish(
        self,
        s: Session,
        policy: PolicyName,
        operation: str,
        kind: str,
        subject: str,
        outcome: Outcome,
        by: str | None,
        dry_run: bool,
    ) -> Decision:
        d = Decision(
            s.id,
            s.target,
            policy,
            operation,
            subject,
            outcome.cls,
            outcome.reason,
            outcome.verdict,
            outcome.rule,
            parts=outcome.parts,
        )
        if d.verdict == "allow":
            return d
        if d.verdict == "refuse":
            if not dry_run:
                await self._audit_decision("refused", d, by)
            return d
        await self.sweep()
        key: Key = (kind if kind != "keys" else "command", s.id, s.target, subject, d.command_class)
        grant = self.approvals.find_grant(key)
        if grant is not None:
            d.granted = True
            if not dry_run:
                self.approvals.use(grant)
                await self._audit(
                    "ran_approved",
                    grant,
                    by=by,
                    route=grant.route,
                    decided_by=grant.decided_by,
                    tool=operation,
                )
            return d
        if dry_run:
            return d
        existing = self.approvals.find_pending(key)
        a = existing or self.approvals.create(key, operation, d.command_class, d.reason, self.ttl())
        d.approval = ApprovalNeeded(
            approval_id=a.approval_id,
            command_class=a.command_class,
            reason=a.reason,
            expires_at=a.expires_at,
            hint=approval_hint(a.approval_id),
        )
        if existing is None:
            await self._audit("asked", a, by=by, tool=operation, policy=policy, rule=d.rule)
        return d

    async def _key_context(self, s: Session) -> str:
        alt = False
        with contextlib.suppress(TmuxError):
            out = await self.m.tmux.command(f"display-message -p -t {s.pane_id} '#{{alternate_on}}'")
            alt = bool(out) and out[0].strip() == "1"
        q = s.pending_question(alternate_on=alt)
        if q is not None and q.kind == "fullscreen":
            return "fullscreen"
        if q is not None and q.kind in ANSWER_KINDS:
            return "answer"
        return "shell"

    async def _audit_decision(self, decision: str, d: Decision, by: str | None) -> None:
        await self._write(
            {
                "event": "policy",
                "decision": decision,
                "session_id": d.session_id,
                "host": d.host,
                "tool": d.operation,
                "command": _clip(d.subject),
                "class": d.command_class,
                "reason": _clip(d.reason, 500),
                "policy": d.policy,
                "rule": d.rule,
                "by": by,
            }
        )

    async def _audit(self, decision: str, a: Approval, **extra: Any) -> None:
        await self._write(
            {
                "event": "policy",
                "decision": decision,
                "approval_id": a.approval_id,
                "session_id": a.session_id,
                "host": a.host,
                "tool": extra.pop("tool", a.operation),
                "command": _clip(a.command),
                "class": a.command_class,
                "reason": _clip(a.reason, 500),
                **{k: v for k, v in extra.items() if v is not None},
            }
        )

    async def _write(self, record: dict[str, Any]) -> None:
        if self._writer is None:
            return
        record = {"ts": timestamp(), **record}
        try:
            await self._writer(record)
        except Exception:
            log.exception("policy_audit_failed")


def _policy(name: str) -> PolicyName:
    return "admin" if name == "admin" else ("read_only" if name == "read_only" else "operator")


def _rank(d: Decision) -> int:
    return 0 if d.allowed else (2 if d.verdict == "refuse" else 1)


def _opaque_outcome(policy: PolicyName, text: str) -> Outcome:
    reason = (
        f"privileged: keys edited the command line in ways sshkeep cannot follow (Tab, arrows, history), "
        f"so what runs is unknown: {text[:80]!r}"
    )
    return Outcome(
        "refuse" if policy == "read_only" else ("allow" if policy == "admin" else "ask"), "privileged", reason
    )
