"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.sshd import SshdUnavailable, SshServer, environment_problem, start_sshd


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
