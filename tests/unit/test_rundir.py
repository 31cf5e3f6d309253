"""sshkeep.common.rundir and claim_runtime_dir: guessable runtime dirs are verified, never trusted."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

from sshkeep.common.errors import UnsafeRuntimeDir
from sshkeep.common.paths import claim_runtime_dir, follow_record, resolve_paths
from sshkeep.common.rundir import (
    dir_problem,
    make_private_dir,
    peer_problem,
    read_record,
    socket_problem,
    write_record,
)


def test_dir_checks(tmp_path: Path) -> None:
    d = tmp_path / "rt"
    assert make_private_dir(d) is None and (d.stat().st_mode & 0o777) == 0o700
    assert dir_problem(d) is None
    link = tmp_path / "link"
    link.symlink_to(d)
    assert "symlink" in (dir_problem(link) or "")
    assert "symlink" in (make_private_dir(link) or "")
    d.chmod(0o755)
    assert dir_problem(d, strict=False) is None and "0755" in (dir_problem(d) or "")
    assert make_private_dir(d) is None and (d.stat().st_mode & 0o777) == 0o700  # ours: tightened
    d.chmod(0o777)  # others could have planted anything in it: refused, left as it is
    assert "0777" in (make_private_dir(d) or "") and (d.stat().st_mode & 0o777) == 0o777
    f = tmp_path / "file"
    f.write_text("x")
    assert "not a directory" in (dir_problem(f) or "")
    assert "does not exist" in (dir_problem(tmp_path / "none") or "")


def test_socket_checks(tmp_path: Path) -> None:
    d = tmp_path / "rt"
    make_private_dir(d)
    path = d / "daemon.sock"
    assert socket_problem(path) is None  # nothing there: connecting just fails
    assert socket_problem(tmp_path / "none" / "daemon.sock") is None
    path.write_text("")
    assert "not a socket" in (socket_problem(path) or "")
    path.unlink()
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)
    cli = socket.socket(socket.AF_UNIX)
    try:
        assert socket_problem(path) is None
        cli.connect(str(path))
        assert peer_problem(cli, path) is None  # served by our own uid
    finally:
        cli.close()
        srv.close()
    d.chmod(0o777)
    assert "others may create files" in (socket_problem(path) or "")


def test_record_round_trip(tmp_path: Path) -> None:
    target = tmp_path / "rt"
    make_private_dir(target)
    assert read_record(tmp_path) is None
    write_record(tmp_path, target)
    assert read_record(tmp_path) == target
    target.chmod(0o777)  # a recorded dir that is no longer safe is not followed
    assert read_record(tmp_path) is None
    write_record(tmp_path, None)
    assert not (tmp_path / "runtime-dir").exists()


def test_guessable_dir_taken_moves_to_an_unpredictable_one(tmp_path: Path) -> None:
    home = tmp_path / ("long-home-" * 10)
    paths = resolve_paths({"SSHKEEP_HOME": str(home)})
    assert paths.fallback is not None and paths.runtime_dir == paths.fallback
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(paths.fallback, ignore_errors=True)
    paths.fallback.symlink_to(elsewhere)  # "someone" made the guessable name point elsewhere
    moved: Path | None = None
    try:
        claimed, refused = claim_runtime_dir(paths)
        moved = claimed.runtime_dir
        assert refused is not None and "symlink" in refused
        assert moved != paths.fallback and moved.parent == Path("/tmp")
        assert claimed.socket == moved / "daemon.sock"
        assert (moved.stat().st_mode & 0o777) == 0o700
        # Clients find it through the record; a second daemon picks the same dir.
        assert resolve_paths({"SSHKEEP_HOME": str(home)}).runtime_dir == moved
        assert follow_record(paths).runtime_dir == moved
        assert claim_runtime_dir(paths)[0].runtime_dir == moved
        assert not any(elsewhere.iterdir())  # nothing was written through the symlink
    finally:
        paths.fallback.unlink()
        if moved is not None:
            shutil.rmtree(moved, ignore_errors=True)


def test_configured_runtime_dir_that_is_not_ours_fails_clearly() -> None:
    tmp_path = Path(tempfile.mkdtemp(prefix="skt-", dir="/tmp"))  # short: no /tmp fallback
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "home" / "run"
    link.parent.mkdir()
    link.symlink_to(real)
    paths = resolve_paths({"SSHKEEP_HOME": str(tmp_path / "home")})
    assert paths.fallback is None and paths.runtime_dir == link
    with pytest.raises(UnsafeRuntimeDir) as err:
        claim_runtime_dir(paths._replace())
    assert str(link) in err.value.message and err.value.status == 403
    assert os.path.islink(link)
    shutil.rmtree(tmp_path)
