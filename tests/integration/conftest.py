"""Fixtures for integration tests: a real sshkeep instance against the real test sshd."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.instance import Instance, new_instance
from tests.sshd import SshServer

SHELLS = ("bash", "zsh", "dash", "ash")


def default_connections(sshd: SshServer) -> dict[str, dict[str, Any]]:
    # `policy: admin`: these suites run rm and friends on purpose; the guard rails' own tests
    # (test_policy.py) set operator and read_only explicitly.
    conns: dict[str, dict[str, Any]] = {sh: {**sshd.connection(sh), "policy": "admin"} for sh in SHELLS}
    conns["bash"]["description"] = "test host, bash login shell"
    return conns


@pytest.fixture
def instance(sshd: SshServer) -> Iterator[Instance]:
    """A fresh SSHKEEP_HOME with config entries bash/zsh/dash/ash, and its daemon running."""
    inst = new_instance(default_connections(sshd))
    try:
        inst.start()
        yield inst
    finally:
        inst.destroy()


@pytest.fixture(scope="module")
def shared(sshd: SshServer) -> Iterator[Instance]:
    """One daemon for a whole module whose tests each open their own sessions (keeps the suite quick)."""
    inst = new_instance(default_connections(sshd))
    try:
        inst.start()
        yield inst
    finally:
        inst.destroy()


@pytest.fixture
def idle_instance(sshd: SshServer) -> Iterator[Instance]:
    """Like `instance`, but no daemon is started (tests of auto-start and start-up)."""
    inst = new_instance(default_connections(sshd))
    try:
        yield inst
    finally:
        inst.destroy()
