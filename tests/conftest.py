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

    Without root or the needed tools it skips, except in CI (`CI` set), where it fails.
    """
    problem = environment_problem()
    if problem is not None:
        if _in_ci():
            pytest.fail(f"sshd fixture unavailable in CI: {problem}", pytrace=False)
        pytest.skip(f"sshd fixture unavailable: {problem}")
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except SshdUnavailable as exc:
        pytest.fail(f"could not start the test sshd: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()
