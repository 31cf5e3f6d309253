"""Policies and config rules: from a classification to allow / ask / refuse, with the reason."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from sshkeep.common.config import Connection
from sshkeep.common.models.policy import CommandClass, PolicyName, Verdict
from sshkeep.daemon.policy.classify import SEVERITY, Classification, Part, rule_matches

VERDICT_ORDER: dict[Verdict, int] = {"allow": 0, "ask": 1, "refuse": 2}


@dataclass(frozen=True)
class Rules:
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    ask: tuple[str, ...] = ()

    @classmethod
    def of(cls, conn: Connection | None) -> Rules:
        if conn is None:
            return cls()
        return cls(tuple(conn.allow), tuple(conn.deny), tuple(conn.ask))

    @property
    def empty(self) -> bool:
        return not (self.allow or self.deny or self.ask)


@dataclass
class Outcome:
    verdict: Verdict
    cls: CommandClass
    reason: str
    rule: str | None = None
    parts: list[Part] = field(default_factory=list)


def base_verdict(policy: PolicyName, cls: CommandClass) -> Verdict:
    """What a policy does with a class when no rule matches."""
    if policy == "admin":
        return "allow"
    if policy == "operator":
        return "ask" if cls in ("destructive", "privileged") else "allow"
    return "allow" if cls == "read" else "refuse"


def _path_rule(rule: str, paths: list[str]) -> bool:
    if not rule.startswith("path:"):
        return False
    glob = rule[5:].strip()
    return any(fnmatch.fnmatchcase(p, glob) for p in paths)


def _match(rules: tuple[str, ...], part: Part) -> str | None:
    for rule in rules:
        if rule.startswith("path:"):
            if _path_rule(rule, part.writes):
                return rule
        elif rule_matches(rule, part.words):
            return rule
    return None


def _show(part: Part) -> str:
    text = " ".join(part.words)
    return text if len(text) <= 80 else text[:77] + "..."


def decide(policy: PolicyName, rules: Rules, c: Classification) -> Outcome:
    """Each command of the line is judged on its own; the line gets the strictest verdict.

    An allow rule covers the commands the matched one runs (a wrapper's or `sh -c`'s inner
    commands), never its neighbours in a list or pipeline; deny and ask rules apply to every one.
    """
    if not c.parts:
        return Outcome(base_verdict(policy, "read"), "read", c.reason, None, [])
    allowed: set[int] = set()
    best: tuple[Verdict, str, str | None, int] | None = None  # verdict, reason, rule, severity
    for i, part in enumerate(c.parts):
        covered = part.parent is not None and part.parent in allowed
        rule = _match(rules.deny, part)
        if rule is not None:
            verdict: Verdict = "refuse"
            reason = f"deny rule {rule!r} matches `{_show(part)}`"
        elif (rule := _match(rules.ask, part)) is not None:
            verdict, reason = "ask", f"ask rule {rule!r} matches `{_show(part)}`"
        elif covered or (rule := _match(rules.allow, part)) is not None:
            allowed.add(i)
            verdict = "allow"
            reason = f"allow rule {rule!r} matches `{_show(part)}`" if rule else f"{part.cls}: {_show(part)}"
        else:
            verdict = base_verdict(policy, part.cls)
            reason = f"{part.cls}: `{_show(part)}` — {part.reason}"
        key = (VERDICT_ORDER[verdict], SEVERITY[part.cls])
        if best is None or key > (VERDICT_ORDER[best[0]], best[3]):
            best = (verdict, reason, rule if verdict != "allow" or rule else None, SEVERITY[part.cls])
    assert best is not None
    verdict, reason, rule, _ = best
    if verdict == "allow" and rule is None:
        reason = f"{c.cls}: {c.reason}"
    return Outcome(verdict, c.cls, reason, rule, c.parts)


def decide_file_write(policy: PolicyName, rules: Rules, path: str) -> Outcome:
    """A file write over the side channel: path rules first, then the policy (write class)."""
    for bucket, verdict in ((rules.deny, "refuse"), (rules.ask, "ask"), (rules.allow, "allow")):
        for rule in bucket:
            if _path_rule(rule, [path]):
                v: Verdict = verdict  # type: ignore[assignment]
                return Outcome(v, "write", f"{bucket_name(v)} rule {rule!r} matches the path {path}", rule)
    return Outcome(base_verdict(policy, "write"), "write", f"write: writes the file {path}")


def bucket_name(verdict: Verdict) -> str:
    return {"refuse": "deny", "ask": "ask", "allow": "allow"}[verdict]
