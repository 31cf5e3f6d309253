"""The SFTP v3 wire protocol (daemon/sftp.py): packet framing, fields, attributes, status replies."""

from __future__ import annotations

import stat
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sshkeep.daemon.files.sftp import (
    ATTR_PERMISSIONS,
    ATTR_SIZE,
    FX_FAILURE,
    FX_NO_SUCH_FILE,
    FXP_DATA,
    FXP_INIT,
    FXP_STATUS,
    Attrs,
    ChannelLost,
    Reader,
    Writer,
    _Framer,
    packet,
    parse_status,
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


# --- framing what ssh writes --------------------------------------------------------------------------


@given(
    bodies=st.lists(st.binary(max_size=3000), min_size=1, max_size=8),
    cuts=st.lists(st.integers(1, 5000), max_size=20),
)
def test_framer_cuts_packets_wherever_the_reads_split(bodies: list[bytes], cuts: list[int]) -> None:
    wire = b"".join(
        packet(FXP_DATA, struct.pack(">I", i) + Writer().string(b).bytes()) for i, b in enumerate(bodies)
    )
    got: list[tuple[int, int, bytes]] = []
    fails: list[str] = []

    def deliver(reply: tuple[int, Reader]) -> None:
        ptype, r = reply
        got.append((ptype, r.u32(), bytes(r.view())))

    framer = _Framer(deliver, fails.append)
    pos = 0
    for n in cuts:  # reads of any size, a packet's header split too
        framer.feed(wire[pos : pos + n])
        pos += n
    framer.feed(wire[pos:])
    assert got == [(FXP_DATA, i, b) for i, b in enumerate(bodies)]
    assert fails == []


def test_framer_refuses_what_is_not_sftp() -> None:
    got: list[object] = []
    fails: list[str] = []
    framer = _Framer(got.append, fails.append)
    framer.feed(b"Welcome to the server!\n")  # a login banner read as a length: far too long
    framer.feed(packet(FXP_STATUS, b"\x00\x00\x00\x01"))
    assert got == [] and len(fails) == 1 and "does not speak SFTP" in fails[0]
