"""sshkeep.common.terminal.markers: finding this session's invisible prompt markers in raw pipe-pane bytes."""

from __future__ import annotations

import random

import pytest

from sshkeep.common.terminal.markers import Marker, find_markers, strip_markers

NONCE = "0123456789abcdef"
OTHER = "fedcba9876543210"


def d(status: int, seq: int, nonce: str = NONCE) -> bytes:
    return f"\x1b]133;D;{status};sk={nonce}:{seq}\x07".encode()


def plain(kind: str, nonce: str = NONCE, extra: str = "") -> bytes:
    return f"\x1b]133;{kind};sk={nonce}{extra}\x07".encode()


def kinds(found: list[Marker]) -> list[str]:
    return [m.kind for m in found]


def test_every_kind_with_offsets_and_fields() -> None:
    data = (
        plain("L")
        + b"Welcome\r\n"
        + plain("X", extra=";sh=dash")
        + d(0, 1)
        + b"$ echo hi\r\n"
        + plain("C")
        + b"hi\r\n"
        + d(7, 2)
        + b"$ "
        + plain("P")
        + b"> "
    )
    found, consumed = find_markers(data, 1000, NONCE)
    assert consumed == len(data)
    assert kinds(found) == ["L", "X", "D", "C", "D", "P"]
    assert found[1].shell == "dash"
    assert (found[2].status, found[2].seq) == (0, 1)
    assert (found[4].status, found[4].seq) == (7, 2)
    for m in found:
        # Offsets are absolute (base added) and span exactly the marker bytes.
        assert data[m.start - 1000 : m.end - 1000].startswith(b"\x1b]133;")
        assert data[m.end - 1000 - 1 : m.end - 1000] == b"\x07"
    assert found[3].start == data.index(plain("C")) + 1000


def test_foreign_nonces_and_malformed_markers_are_ignored() -> None:
    data = (
        d(1, 5, OTHER)
        + plain("C", OTHER)
        + plain("X", OTHER, ";sh=bash")
        + f"\x1b]133;D;oops;sk={NONCE}:3\x07".encode()  # status not a number
        + f"\x1b]133;D;0;sk={NONCE}:x\x07".encode()  # seq not a number
        + b"\x1b]133;D;0\x07"  # a program's own OSC 133, without nonce
        + b"\x1b]133;A\x07"
        + b"\x1b]0;title\x07"
        + d(2, 9)
    )
    found, consumed = find_markers(data, 0, NONCE)
    assert consumed == len(data)
    assert [(m.kind, m.status, m.seq) for m in found] == [("D", 2, 9)]


def test_nonce_prefix_is_not_the_nonce() -> None:
    found, _ = find_markers(plain("C", NONCE + "00") + d(0, 1, NONCE[:-2]), 0, NONCE)
    assert found == []


@pytest.mark.parametrize("cut", range(1, len(d(130, 12))))
def test_marker_cut_at_chunk_end_is_left_for_the_next_call(cut: int) -> None:
    marker = d(130, 12)
    data = b"output\r\n" + marker + b"$ "
    head = data[: len(b"output\r\n") + cut]
    found, consumed = find_markers(head, 0, NONCE)
    assert found == []
    assert consumed == len(b"output\r\n")  # stops at the ESC that may start a marker
    found, consumed2 = find_markers(data[consumed:], consumed, NONCE)
    assert [(m.kind, m.status, m.seq, m.start) for m in found] == [("D", 130, 12, len(b"output\r\n"))]
    assert consumed + consumed2 == len(data)


def test_other_escapes_at_chunk_end_are_consumed() -> None:
    # A CSI sequence can never become a marker: no need to hold it back.
    data = b"text\x1b[1;3"
    assert find_markers(data, 0, NONCE) == ([], len(data))
    # A partial foreign OSC might be ours until its fields arrive: held back.
    data = b"text\x1b]13"
    assert find_markers(data, 0, NONCE) == ([], 4)


def test_complete_marker_before_a_partial_one() -> None:
    data = d(0, 1) + b"out\r\n" + d(1, 2)[:6]
    found, consumed = find_markers(data, 50, NONCE)
    assert [m.seq for m in found] == [1]
    assert consumed == len(d(0, 1) + b"out\r\n")


def test_any_chunking_finds_the_same_markers() -> None:
    rng = random.Random(7)
    stream = b""
    for i in range(60):
        stream += bytes(rng.choice(b"ab \r\n\x1b[m") for _ in range(rng.randint(0, 30)))
        stream += rng.choice([d(i % 256, i), plain("C"), d(1, i, OTHER), plain("P"), b"\x1b]0;t\x07"])
    whole, consumed = find_markers(stream, 0, NONCE)
    assert consumed == len(stream)
    for _ in range(200):
        pos, found = 0, []
        while pos < len(stream):
            end = min(len(stream), pos + rng.randint(1, 64))
            got, used = find_markers(stream[pos:end], pos, NONCE)
            found += got
            pos += used
            if used == 0:  # a held-back tail: read more before scanning again
                got, used = find_markers(stream[pos : end + 64], pos, NONCE)
                found += got
                pos += used
        assert found == whole


def test_strip_markers_removes_every_nonce() -> None:
    data = b"a" + d(0, 1) + b"b" + plain("C", OTHER) + b"c\x1b]0;title\x07"
    assert strip_markers(data) == b"abc\x1b]0;title\x07"


def test_a_working_directory_marker_keeps_semicolons() -> None:
    data = d(0, 1) + plain("W", extra=";/srv/a;b c") + b"$ " + plain("W", OTHER, ";/forged")
    found, _ = find_markers(data, 0, NONCE)
    assert [(m.kind, m.text) for m in found] == [("D", None), ("W", "/srv/a;b c")]
    assert strip_markers(data) == b"$ "


def test_plain_output_without_escapes_has_no_markers_and_strips_to_itself() -> None:
    data = b"x" * 99 + b"y\n"
    assert find_markers(data * 1000, 5, NONCE) == ([], len(data) * 1000)
    assert strip_markers(data) is data


def test_a_marker_after_plain_output_is_found_at_its_offset() -> None:
    data = b"line\n" * 5000 + d(0, 3)
    found, consumed = find_markers(data, 100, NONCE)
    assert [(m.kind, m.start, m.seq) for m in found] == [("D", 100 + 25000, 3)]
    assert consumed == len(data)


def test_fields_must_have_their_exact_shape() -> None:
    data = (
        f"\x1b]133;D;0;sk={NONCE}:3;more\x07".encode()  # a third field: not ours
        + f"\x1b]133;D;sk={NONCE}:3\x07".encode()  # no status
        + plain("W")  # no directory
        + plain("X", extra=";v=2;sh=zsh")  # the shell field need not come first
        + plain("W", extra=";")  # an empty directory is still a W marker
        + plain("C", extra=";extra")
    )
    found, consumed = find_markers(data, 100, NONCE)
    assert consumed == len(data)
    expected = [("X", "zsh", None), ("W", None, ""), ("C", None, None)]
    assert [(m.kind, m.shell, m.text) for m in found] == expected
