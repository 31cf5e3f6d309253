from __future__ import annotations

import time

import pytest

from sshkeep.common.terminal.render import render, split_lines


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", ""),
        (b"X\r\n", "X\n"),
        (b"a\r\nb", "a\nb"),
        (b"a\nb\n", "a\nb\n"),
        (b"x\r\r\ny\r\n", "x\ny\n"),
        (b"\033[1;31mred\033[0m plain\r\n", "red plain\n"),
        (b"\x1b[38;5;208mo\x1b[m \x1b[48;2;1;2;3mk\x1b[0m\n", "o k\n"),
        (b"\x1b[?2004l\r\x1b[?2004hout\r\n", "out\n"),
        (b"\x1b(B\x1b)0abc\x1b(0\x1b%G\r\n", "abc\n"),
        (b"\x1b=\x1b>\x1b7a\x1b8\x1bM\x1bcb\n", "b\n"),
        (b"\x1b[6n\x1b[?1049h\x1b[Hx\x1b[?25l\n", "x\n"),
        (b"\x1bPq#0;2;0;0;0\x1b\\a\x1bXsos\x1b\\\x1b^pm\x1b\\\x1b_apc\x1b\\b\n", "ab\n"),
        (b"\x1bPtmux;\x1b\x1b]0;t\x07\x1b\\ok\n", "ok\n"),
        (b"\ttab\x07bell\x00nul\x7f\n", "\ttabbellnul\n"),
        (b"trailing   \r\n   \r\n", "trailing   \n   \n"),
    ],
)
def test_render(raw: bytes, expected: str) -> None:
    assert render(raw) == expected


def test_osc_title_and_osc133_markers_are_stripped() -> None:
    raw = b"\x1b]0;user@host: ~\x07\x1b]133;C;sk=abc\x07out\x1b]133;D;0;sk=abc:1\x1b\\\r\n$ "
    assert render(raw) == "out\n$ "


def test_unterminated_osc_at_end_is_dropped() -> None:
    assert render(b"done\r\nxx\x1b]0;half a tit") == "done\nxx"


def test_incomplete_csi_at_end_is_dropped() -> None:
    assert render(b"abc\x1b[1;3") == "abc"
    assert render(b"abc\x1b") == "abc"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"10%\r20%\r100%\n", "100%\n"),
        (b"abcdef\rXY\n", "XYcdef\n"),
        (b"[==>   ] 30%\r[======] 100%\r\n", "[======] 100%\n"),
        (b"one\rtwo", "two"),
        (b"line\r\n\r", "line\n"),
    ],
)
def test_carriage_return_overwrites(raw: bytes, expected: str) -> None:
    assert render(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"ab\bc", "ac"),
        (b"ab\b \b\r\n", "a\n"),
        (b"a\b \b", ""),
        (b"\b\bx", "x"),
        (b"ls -l\b\b\b\b\bpwd  \b\b\n", "pwd\n"),
    ],
)
def test_backspace_moves_left(raw: bytes, expected: str) -> None:
    assert render(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"hello world\r\x1b[Kbye\n", "bye\n"),
        (b"hello\x1b[2D\x1b[0K!\n", "hel!\n"),
        (b"abc\x1b[1G\x1b[1KZ\n", "Zbc\n"),
        (b"abc\x1b[2K\x1b[5Gx\n", "    x\n"),
        (b"a\x1b[3Cb\n", "a   b\n"),
        (b"a\x1b[Cb\n", "a b\n"),
        (b"abcdef\x1b[3G\x1b[2P\x1b[1X\x1b[2@Z\n", "abZ  f\n"),
    ],
)
def test_in_line_cursor_and_erase(raw: bytes, expected: str) -> None:
    assert render(raw) == expected


def test_screen_clear_keeps_earlier_lines() -> None:
    assert render(b"one\r\n\x1b[H\x1b[2J\x1b[3Jtwo\r\n\x1b[J") == "one\ntwo\n"


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    assert render(b"bad \xff\xfe ok\r\n") == "bad \ufffd\ufffd ok\n"
    assert render(b"\xc3") == "\ufffd"


def test_multibyte_utf8() -> None:
    data = "café € 日本 🙂\r\n".encode()
    assert render(data) == "café € 日本 🙂\n"
    cut = data.index("€".encode()) + 1  # inside the 3-byte euro sign
    assert render(data[:cut]).endswith("\ufffd")
    assert render(data[:cut] + data[cut:]) == "café € 日本 🙂\n"


def test_large_output_is_correct_and_fast() -> None:
    raw = b"".join(b"%d\r\n" % i for i in range(1, 100_001))
    start = time.perf_counter()
    text = render(raw)
    elapsed = time.perf_counter() - start
    assert split_lines(text) == [str(i) for i in range(1, 100_001)]
    assert elapsed < 0.5


def test_large_output_with_some_rewrites() -> None:
    raw = b"".join(b"\x1b[32m%d\x1b[0m%%\r%d\r\n" % (i, i) for i in range(1, 20_001))
    assert split_lines(render(raw)) == [f"{i}%" for i in range(1, 20_001)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("\n", [""]),
        ("a", ["a"]),
        ("a\n", ["a"]),
        ("a\nb", ["a", "b"]),
        ("a\n\nb\n", ["a", "", "b"]),
    ],
)
def test_split_lines(text: str, expected: list[str]) -> None:
    assert split_lines(text) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Spaces the program printed stay, trailing ones too; blanks the terminal made do not.
        (b"$ ", "$ "),
        (b"a  \r\n", "a  \n"),
        (b"ab\x1b[5Cc\x1b[3C\r\n", "ab     c\n"),
        (b"abc\x1b[2X\r\n", "abc\n"),
        (b"abcdef\r\x1b[4C\x1b[2X\n", "abcd\n"),
        (b"abcdef\r\x1b[K\n", "\n"),
        # Columns are cells: a wide character takes two, a combining mark none.
        ("ab\r漢\n".encode(), "漢\n"),
        ("漢字\rx\n".encode(), "x 字\n"),
        ("漢字\x08\x08x\n".encode(), "漢x\n"),
        ("e\u0301x\rE\n".encode(), "Ex\n"),
        ("🎉ab\rc\n".encode(), "c ab\n"),
        ("a\u0301\u0302b\x08c\n".encode(), "a\u0301\u0302c\n"),
        # Cursor save/restore within a line.
        (b"\x1b7saved\x1b8restored\n", "restored\n"),
        (b"ab\x1b[scd\x1b[uXY\n", "abXY\n"),
        (b"\x1b8x\n", "x\n"),
    ],
)
def test_cells_and_kept_spaces(raw: bytes, expected: str) -> None:
    assert render(raw) == expected


def test_carriage_return_goes_to_the_start_of_the_screen_row() -> None:
    # A line editor's echo of a line longer than the pane: the last cell, the next character on
    # the new row, then `\r` and that character again (forces the wrap on xenl terminals).
    raw = ("$ " + "x" * 198 + "A\rAB" + "C" * 50 + "\r\n").encode()
    assert render(raw, width=200) == "$ " + "x" * 198 + "AB" + "C" * 50 + "\n"
    assert render(b"a" * 250 + b"\rX\n", width=200) == "a" * 200 + "X" + "a" * 49 + "\n"
    assert render(b"a" * 200 + b"\rX\n", width=200) == "X" + "a" * 199 + "\n"
    assert render(b"a" * 250 + b"\r\x1b[K\n", width=200) == "a" * 200 + "\n"


def test_echoed_query_answers_are_not_output() -> None:
    from sshkeep.common.terminal.render import strip_query_echo

    assert strip_query_echo("a^[[?1;2c^[[>84;0;0c^[[50;1Rb") == "ab"
    assert strip_query_echo("^[[A stays") == "^[[A stays"
