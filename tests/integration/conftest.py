"""Fixtures for integration tests: the real test sshd, and real sshkeep instances against it.

Every test module here is marked `integration` by tests/conftest.py.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.instance import Instance, instance_of
from tests.sshd import SshdUnavailable, SshServer, environment_problem, start_sshd
from tests.support import OuterTmux, default_connections


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshServer]:
    """A real sshd on 127.0.0.1 with test users per login shell (see tests/sshd.py).

    Without root or the needed tools it fails with the reason: integration tests are never skipped
    (`bash tests/run.sh`, as root, installs what they need).
    """
    problem = environment_problem()
    if problem is not None:
        where = " in CI" if _in_ci() else ""
        pytest.fail(f"sshd fixture unavailable{where}: {problem}", pytrace=False)
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except SshdUnavailable as exc:
        pytest.fail(f"could not start the test sshd: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


def _instance_fixture(name: str, doc: str, *, scope: str = "function", start: bool = True) -> Any:
    """A fixture giving a fresh instance (its own SSHKEEP_HOME, tmux server and config entries for
    the SHELLS), its daemon started if `start`, destroyed when `scope` ends."""

    def fixture(sshd: SshServer) -> Iterator[Instance]:
        with instance_of(default_connections(sshd), start=start) as inst:
            yield inst

    fixture.__doc__ = doc
    return pytest.fixture(scope=scope, name=name)(fixture)  # type: ignore[call-overload]


instance = _instance_fixture("instance", "A fresh instance, its daemon running.")
shared = _instance_fixture("shared", "One running instance for a whole module.", scope="module")
idle_instance = _instance_fixture("idle_instance", "A fresh instance, no daemon started yet.", start=False)


@pytest.fixture
def outer(tmp_path: Path) -> Iterator[OuterTmux]:
    """A separate tmux server standing in for the person's own terminal."""
    o = OuterTmux(tmp_path / "outer.sock")
    try:
        yield o
    finally:
        o("kill-server")
