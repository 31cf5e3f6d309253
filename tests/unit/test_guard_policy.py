"""The guard's policy of a session: read from config.yml, and read anew when the file changes."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import yaml

from sshkeep.common.config import ConfigSource
from sshkeep.daemon.policy.guard import Guard
from sshkeep.daemon.sessions.manager import SessionManager
from sshkeep.daemon.sessions.session import Session


def write(path: Path, doc: dict[str, Any], stamp: int) -> None:
    path.write_text(yaml.safe_dump(doc))
    path.chmod(0o600)
    os.utime(path, ns=(stamp, stamp))  # a distinct mtime even within the clock's resolution


def test_policy_follows_config_changes(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    entry = {"host": "example.org", "user": "u", "policy": "read_only", "deny": ["rm *"]}
    write(path, {"connections": {"web": entry}, "settings": {"policy": "operator"}}, 10**18)
    guard = Guard(cast(SessionManager, SimpleNamespace(config=ConfigSource(path))))
    web = cast(Session, SimpleNamespace(connection="web"))
    plain = cast(Session, SimpleNamespace(connection=None))
    gone = cast(Session, SimpleNamespace(connection="gone"))
    policy, rules, where = guard.policy_for(web)
    assert (policy, rules.deny, where) == ("read_only", ("rm *",), "connections.web.policy")
    assert guard.policy_for(web) == (policy, rules, where)  # asked again: the same answer
    assert guard.policy_for(plain)[::2] == ("operator", "settings.policy")
    assert guard.policy_for(gone)[0] == "read_only"
    write(
        path,
        {"connections": {"web": {**entry, "policy": "admin"}}, "settings": {"policy": "admin"}},
        2 * 10**18,
    )
    assert guard.policy_for(web)[::2] == ("admin", "connections.web.policy")
    assert guard.policy_for(plain)[0] == "admin"
