"""Policies, config rules, the approvals store and the config fields of the guard rails."""

from __future__ import annotations

from pathlib import Path

import pytest

from sshkeep.common.config import load_config
from sshkeep.common.errors import ApprovalClosed, ApprovalNotFound
from sshkeep.daemon.policy.approvals import ApprovalStore
from sshkeep.daemon.policy.classify import classify
from sshkeep.daemon.policy.rules import Rules, decide, decide_file_write


@pytest.mark.parametrize(
    ("policy", "line", "verdict"),
    [
        ("admin", "rm -rf /", "allow"),
        ("admin", "sudo reboot", "allow"),
        ("operator", "ls -la", "allow"),
        ("operator", "touch x", "allow"),
        ("operator", "./deploy.sh", "allow"),
        ("operator", "rm -rf /tmp/x", "ask"),
        ("operator", "sudo ls", "ask"),
        ("operator", "$CMD", "ask"),
        ("read_only", "ls -la", "allow"),
        ("read_only", "echo hi > f", "refuse"),
        ("read_only", "./deploy.sh", "refuse"),
        ("read_only", "rm x", "refuse"),
    ],
)
def test_policies(policy: str, line: str, verdict: str) -> None:
    out = decide(policy, Rules(), classify(line))  # type: ignore[arg-type]
    assert out.verdict == verdict, out.reason
    assert out.cls in out.reason  # the class is quoted in every decision


def test_allow_rule_covers_what_the_command_runs_but_not_its_neighbours() -> None:
    rules = Rules(allow=("sudo systemctl restart nginx",))
    assert decide("operator", rules, classify("sudo systemctl restart nginx")).verdict == "allow"
    chained = decide("operator", rules, classify("sudo systemctl restart nginx && rm -rf /"))
    assert chained.verdict == "ask" and "rm -rf /" in chained.reason


def test_deny_and_ask_rules() -> None:
    rules = Rules(deny=("git push*",), ask=("curl",), allow=("rm /tmp/scratch/*",))
    out = decide("admin", rules, classify("git status && git push origin main"))
    assert out.verdict == "refuse" and out.rule == "git push*" and "deny rule" in out.reason
    assert decide("admin", rules, classify("curl -s http://x")).verdict == "ask"
    assert decide("operator", rules, classify("rm /tmp/scratch/a")).verdict == "allow"
    assert decide("operator", rules, classify("rm /tmp/other")).verdict == "ask"
    # A deny rule inside a wrapper still applies.
    assert decide("admin", rules, classify("sh -c 'git push -f'")).verdict == "refuse"


def test_path_rules_apply_to_redirects_and_file_writes() -> None:
    rules = Rules(deny=("path:/etc/*",), ask=("path:/srv/*",))
    assert decide("admin", rules, classify("echo x > /etc/motd")).verdict == "refuse"
    assert decide_file_write("admin", rules, "/etc/hosts").verdict == "refuse"
    assert decide_file_write("admin", rules, "/srv/app.conf").verdict == "ask"
    assert decide_file_write("operator", rules, "/tmp/x").verdict == "allow"
    assert decide_file_write("read_only", Rules(), "/tmp/x").verdict == "refuse"


def test_approvals_are_bound_to_their_key_and_expire() -> None:
    store = ApprovalStore()
    key = ("command", "s1", "host", "rm -rf /tmp/x", "destructive")
    a = store.create(key, "send_command", "destructive", "why", ttl=10, now=100)
    assert store.find_pending(key, now=105) is a
    assert store.find_grant(key, now=105) is None
    store.answer(a.approval_id, True, "uid 0", "cli", "once", ttl=10, now=106)
    assert store.find_grant(key, now=107) is a
    assert store.find_grant(("command", "s1", "host", "rm -rf /tmp/y", "destructive"), now=107) is None
    assert store.find_grant(("command", "s2", "host", "rm -rf /tmp/x", "destructive"), now=107) is None
    store.use(a)
    assert store.find_grant(key, now=107) is None and a.state == "used"
    b = store.create(key, "send_command", "destructive", "why", ttl=10, now=200)
    assert [x.approval_id for x in store.expire(now=211)] == [b.approval_id]
    with pytest.raises(ApprovalClosed):
        store.answer(b.approval_id, True, "uid 0", "cli", now=212)
    with pytest.raises(ApprovalNotFound):
        store.get("a000000000000")
    c = store.create(key, "send_command", "destructive", "why", ttl=10, now=300)
    store.answer(c.approval_id, True, "uid 0", "http", "timed", grant_seconds=60, now=301)
    store.use(c)
    assert store.find_grant(key, now=350) is c  # a timed grant runs again and again
    store.expire(now=362)
    assert store.find_grant(key, now=362) is None


def test_config_policy_fields(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        "settings:\n  policy: read_only\n  approval_ttl: 30\n"
        "connections:\n"
        "  good: {host: a, policy: operator, allow: [ls, 'git status*'],\n"
        "         deny: ['path:/etc/*'], ask: [curl]}\n"
        "  bad: {host: b, policy: root}\n"
        "  badrule: {host: c, deny: ['']}\n"
    )
    cfg = load_config(path)
    assert cfg.connections["good"].policy == "operator"
    assert cfg.connections["good"].deny == ["path:/etc/*"]
    assert "connections.bad.policy" in cfg.errors["bad"]
    assert "connections.badrule.deny" in cfg.errors["badrule"]
    assert cfg.tunables.policy == "read_only" and cfg.tunables.approval_ttl == 30
    assert not cfg.tunables.problems
    path.write_text("settings:\n  policy: readonly\nconnections:\n  x: {host: a}\n")
    broken = load_config(path)
    assert broken.file_error is not None and "settings.policy" in broken.file_error
    path.write_text("connections:\n  x: {host: a}\n")
    assert load_config(path).tunables.policy == "operator"
