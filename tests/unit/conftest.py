"""Fixtures for unit tests: a fresh sshkeep home, and the daemon's HTTP app over it (never started)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from sshkeep.common.paths import Paths, resolve_paths
from sshkeep.daemon.api.app import build_app
from sshkeep.daemon.server import Daemon


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    """The paths of an sshkeep home in tmp_path, its state directory made."""
    p = resolve_paths({"SSHKEEP_HOME": str(tmp_path), "HOME": str(tmp_path)})
    p.state_dir.mkdir(parents=True)
    return p


@pytest.fixture
def app(paths: Paths) -> web.Application:
    """The daemon's aiohttp application over `paths`: routes and middleware, no tmux, no socket."""
    return build_app(Daemon(paths).services())
