"""Pure parts of file transfer (daemon/files/): remote paths, text pages, permissions, temp names,
error mapping. The transfers themselves are tested against a real sshd in tests/integration/test_files.py."""

from __future__ import annotations

import stat

import pytest

from sshkeep.common.errors import BadRequest, NotFound, RemoteError
from sshkeep.daemon.files.errors import file_error
from sshkeep.daemon.files.sftp import FX_FAILURE, FX_NO_SUCH_FILE, FX_PERMISSION_DENIED, Attrs, SftpError
from sshkeep.daemon.files.transfers import (
    _check_encoding_text,
    _may_write,
    _temp_name,
    remote_path,
)


def test_remote_path() -> None:
    assert remote_path("~") == "."
    assert remote_path("~/") == "."
    assert remote_path("~/a b/c") == "a b/c"
    assert remote_path("/etc/$HOME `x`") == "/etc/$HOME `x`"
    assert remote_path("-rf") == "-rf"
    with pytest.raises(BadRequest):
        remote_path("~root/x")
    with pytest.raises(BadRequest):
        remote_path("a\x00b")


def test_text_pages_end_on_character_boundaries() -> None:
    data = "aé✓🙂".encode()  # 1 + 2 + 3 + 4 bytes
    assert _check_encoding_text(data, "f", 0, cut_allowed=False) == ("aé✓🙂", 10)
    for cut in range(1, 10):
        text, used = _check_encoding_text(data[:cut], "f", 0, cut_allowed=True)
        assert data[:used].decode() == text and used <= cut and cut - used < 4
        if used:
            assert "aé✓🙂".startswith(text)
    with pytest.raises(BadRequest, match="limit"):
        _check_encoding_text(data[6:7], "f", 6, cut_allowed=True)
    with pytest.raises(BadRequest, match="inside a UTF-8 character"):
        _check_encoding_text(data[2:], "f", 2, cut_allowed=False)
    with pytest.raises(BadRequest, match="not UTF-8") as exc:
        _check_encoding_text(b"ok\xff", "f", 0, cut_allowed=False)
    assert "base64" in exc.value.hint
    with pytest.raises(BadRequest, match="NUL byte at offset 12"):
        _check_encoding_text(b"ab\x00", "f", 10, cut_allowed=False)


def test_may_write() -> None:
    mine = Attrs(uid=1000, gid=1000, permissions=stat.S_IFREG | 0o644)
    assert _may_write(mine, 1000, 1000)
    assert not _may_write(Attrs(uid=1000, gid=1000, permissions=stat.S_IFREG | 0o444), 1000, 1000)
    assert not _may_write(Attrs(uid=0, gid=0, permissions=stat.S_IFREG | 0o644), 1000, 1000)
    assert _may_write(Attrs(uid=0, gid=50, permissions=stat.S_IFREG | 0o664), 1000, 1000)
    assert _may_write(Attrs(uid=0, gid=0, permissions=stat.S_IFREG | 0o444), 0, 0)  # root
    assert _may_write(Attrs(), None, None)


def test_temp_name_is_hidden_unique_and_short() -> None:
    a, b = _temp_name("x.txt"), _temp_name("x.txt")
    assert a != b and a.startswith(".x.txt.sk-") and a.endswith(".tmp")
    assert len(_temp_name("é" * 200).encode()) < 255


def test_file_errors_name_the_path() -> None:
    e = file_error(SftpError(FX_NO_SUCH_FILE, "No such file"), "/a b/c", "read")
    assert isinstance(e, NotFound) and "/a b/c" in e.message
    e = file_error(SftpError(FX_PERMISSION_DENIED, "Permission denied"), "/etc/shadow", "read")
    assert isinstance(e, RemoteError) and "/etc/shadow" in e.message and "permission denied" in e.message
    e = file_error(SftpError(FX_FAILURE, "Failure"), "/x", "read")
    assert "/x" in e.message and "Failure" not in e.message
