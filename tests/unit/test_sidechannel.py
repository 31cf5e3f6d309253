"""Pure parts of the side channel and file transfer: SFTP packets, side ssh argv, paths, text pages."""

from __future__ import annotations

import os
import stat
import struct
import tty

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import BadRequest, NotFound, RemoteError
from daemon.files import _check_encoding_text, _may_write, _temp_name, file_error, remote_path
from daemon.sidechannel import (
    ATTR_PERMISSIONS,
    ATTR_SIZE,
    FX_FAILURE,
    FX_NO_SUCH_FILE,
    FX_PERMISSION_DENIED,
    FXP_INIT,
    FXP_STATUS,
    Attrs,
    ChannelLost,
    Reader,
    SftpError,
    Writer,
    looks_like_no_master,
    packet,
    parse_status,
    side_argv,
    split_ssh_argv,
    tty_is_raw,
)

# --- SFTP encoding ------------------------------------------------------------------------------------


def test_packet_framing() -> None:
    assert packet(FXP_INIT, struct.pack(">I", 3)) == b"\x00\x00\x00\x05\x01\x00\x00\x00\x03"
    body = Writer().u32(7).string("a b").u64(2**40).u8(9).bytes()
    assert body == b"\x00\x00\x00\x07" + b"\x00\x00\x00\x03a b" + (2**40).to_bytes(8, "big") + b"\x09"


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("u32"), st.integers(0, 2**32 - 1)),
            st.tuples(st.just("u64"), st.integers(0, 2**64 - 1)),
            st.tuples(st.just("string"), st.binary(max_size=300)),
        ),
        max_size=20,
    )
)
def test_writer_reader_round_trip(fields: list[tuple[str, object]]) -> None:
    w = Writer()
    for kind, value in fields:
        getattr(w, kind)(value)
    r = Reader(w.bytes())
    for kind, value in fields:
        assert getattr(r, kind)() == value
    assert r.remaining == 0


def test_reader_refuses_short_packets() -> None:
    with pytest.raises(ChannelLost):
        Reader(b"\x00\x00\x00\x09abc").string()
    with pytest.raises(ChannelLost):
        Reader(b"\x00\x01").u32()


@given(
    size=st.none() | st.integers(0, 2**64 - 1),
    owner=st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    perms=st.none() | st.integers(0, 0o177777),
    times=st.none() | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
)
def test_attrs_round_trip(
    size: int | None, owner: tuple[int, int] | None, perms: int | None, times: tuple[int, int] | None
) -> None:
    a = Attrs(size=size, permissions=perms)
    if owner:
        a.uid, a.gid = owner
    if times:
        a.atime, a.mtime = times
    assert Attrs.decode(Reader(a.encode())) == a


def test_attrs_flags_and_extended_pairs_are_skipped() -> None:
    assert Attrs(size=5, permissions=0o100644).encode()[:4] == struct.pack(">I", ATTR_SIZE | ATTR_PERMISSIONS)
    assert Attrs().encode() == b"\x00\x00\x00\x00"
    raw = struct.pack(">I", 0x80000000 | ATTR_SIZE) + (42).to_bytes(8, "big")
    raw += Writer().u32(1).string("k@x").string("v").u32(99).bytes()
    r = Reader(raw)
    assert Attrs.decode(r).size == 42
    assert r.u32() == 99  # the extended pair was consumed


def test_attrs_file_types() -> None:
    assert Attrs(permissions=stat.S_IFDIR | 0o755).is_dir
    assert Attrs(permissions=stat.S_IFLNK | 0o777).is_link
    reg = Attrs(permissions=stat.S_IFREG | 0o4755)
    assert reg.is_regular and not reg.is_dir and reg.mode == 0o4755
    assert Attrs().is_regular and Attrs().mode is None


def test_parse_status() -> None:
    r = Reader(Writer().u32(FX_NO_SUCH_FILE).string("No such file").string("").bytes())
    assert parse_status(r) == (FX_NO_SUCH_FILE, "No such file")
    assert parse_status(Reader(struct.pack(">I", FX_FAILURE))) == (FX_FAILURE, "")
    assert FXP_STATUS == 101


# --- side ssh argv -----------------------------------------------------------------------------------

SESSION_ARGV = [
    "ssh",
    "-o", "ControlMaster=yes",
    "-o", "ControlPath=/run/sk/cm/web-abc123",
    "-o", "ControlPersist=no",
    "-o", "ServerAliveInterval=15",
    "-o", "PermitLocalCommand=yes",
    "-o", "LocalCommand=printf '\\033]133;L;sk=1234\\007'",
    "-l", "deploy",
    "-p", "2222",
    "-i", "/home/me/.ssh/id ed25519",
    "-J", "bastion",
    "-o", "LocalForward=8080 localhost:80",
    "-o", "StrictHostKeyChecking=accept-new",
    "--",
    "web.example.com",
]  # fmt: skip


def test_split_session_argv() -> None:
    kept, dest, control = split_ssh_argv(SESSION_ARGV)
    assert dest == "web.example.com"
    assert control == "/run/sk/cm/web-abc123"
    assert kept == [
        "-o", "ServerAliveInterval=15",
        "-l", "deploy",
        "-p", "2222",
        "-i", "/home/me/.ssh/id ed25519",
        "-o", "StrictHostKeyChecking=accept-new",
    ]  # fmt: skip


def test_split_handles_bundles_and_attached_values() -> None:
    kept, dest, control = split_ssh_argv(["ssh", "-4At", "-oControlPath=/x/y", "-luser", "-v", "host"])
    assert (dest, control) == ("host", "/x/y")
    assert kept == ["-4", "-A", "-l", "user"]
    assert split_ssh_argv([]) == ([], None, None)
    assert split_ssh_argv(["ssh", "-S", "/sock", "h"])[2] == "/sock"


def test_side_argv_cannot_log_in_by_itself() -> None:
    argv = side_argv("/run/sk/cm/s1", ["-l", "deploy"], "web", subsystem="sftp")
    assert argv[:3] == ["ssh", "-S", "/run/sk/cm/s1"]
    assert argv[-4:] == ["-s", "--", "web", "sftp"]
    text = " ".join(argv)
    for opt in ("ControlMaster=no", "ProxyCommand=false", "BatchMode=yes", "ClearAllForwardings=yes"):
        assert opt in text
    # Our options come first: for ssh the first value given wins.
    assert argv.index("ProxyCommand=false") < argv.index("deploy")
    cmd = side_argv("/s", [], "web", command="echo 'a b' $HOME")
    assert cmd[-3:] == ["--", "web", "echo 'a b' $HOME"]


def test_no_master_words() -> None:
    assert looks_like_no_master("kex_exchange_identification: Connection closed by remote host\r\n")
    assert not looks_like_no_master("ls: cannot access 'x': No such file or directory\n")


def test_tty_raw_mode_is_seen() -> None:
    master, slave = os.openpty()
    try:
        path = os.ttyname(slave)
        assert tty_is_raw(path) is False  # a fresh pty is cooked
        tty.setraw(slave)
        assert tty_is_raw(path) is True
    finally:
        os.close(master)
        os.close(slave)
    assert tty_is_raw("/nonexistent/tty") is None


# --- files: paths, text pages, permissions --------------------------------------------------------


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
