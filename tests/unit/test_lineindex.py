"""The line index pages rendered output exactly as rendering all of it would, in any chunking."""

from __future__ import annotations

import random

import pytest

from sshkeep.common.terminal import markers as mk
from sshkeep.common.terminal.render import render, split_lines
from sshkeep.daemon.sessions import lineindex
from sshkeep.daemon.sessions.lineindex import LineIndex

PIECES = [
    b"plain line\r\n",
    b"\x1b[31mred\x1b[0m\r\n",
    b"50%\r100%\r\n",
    b"\r\n",
    b"tab\there\n",
    b"x" * 300 + b"\n",
]


def sample(seed: int, n: int) -> bytes:
    rng = random.Random(seed)
    return b"".join(rng.choice(PIECES) for _ in range(n)) + b"unfinished \x1b[1mlast"


@pytest.mark.parametrize("chunk", [7, 64, 1000, 1 << 20])
def test_pages_match_a_full_render(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(lineindex, "CHUNK", chunk)
    monkeypatch.setattr(lineindex, "MAX_LINE", chunk * 1000)
    data = sample(chunk, 400)

    def read(a: int, b: int) -> bytes:
        return data[a:b]

    want = split_lines(render(mk.strip_markers(data)))
    index = LineIndex.at(0)
    for upto in (len(data) // 3, len(data) // 2, len(data)):  # grows as the output does
        index.extend(read, upto)
        assert index.total(read, upto) == len(split_lines(render(data[:upto])))
    assert index.total(read, len(data)) == len(want)
    for first, count in ((0, 10), (5, 1000), (len(want) - 3, 10), (len(want), 5), (123, 77)):
        assert index.lines(read, first, count, len(data)) == want[first : first + count]


def test_rebase_after_the_cap_dropped_the_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lineindex, "CHUNK", 500)
    data = bytearray(sample(1, 300))
    index = LineIndex.at(0)
    index.extend(lambda a, b: bytes(data[a:b]), len(data))
    cut = data.index(b"\n", len(data) // 2) + 1
    data[:cut] = bytes(cut)  # punched out: reads as zeros

    def read(a: int, b: int) -> bytes:
        return bytes(data[a:b])

    index.rebase(read, cut)
    want = split_lines(render(bytes(data[cut:])))
    assert index.total(read, len(data)) == len(want)
    assert index.lines(read, 0, 20, len(data)) == want[:20]
    assert index.lines(read, len(want) - 20, 20, len(data)) == want[-20:]


@pytest.mark.parametrize(
    "raw",
    [
        b"plain\r\nlines  \r\n",
        b"no end",
        b"a\r\r\nb\n",
        b"cr\roverwrite\n",
        b"bs\x08x\n",
        b"\x1b[31mred\x1b[0m\n",
        b"ctl\x01\x7f\n",
        "utf-8 \u00e9\u0085 c1\n".encode(),
        b"bad \xff\xfe utf-8\n",
        b"\x1b]133;D;0;sk=00\x07after\n",
        b"",
    ],
)
def test_render_lines_fast_path_matches_the_renderer(raw: bytes) -> None:
    assert lineindex.render_lines(raw) == split_lines(render(mk.strip_markers(raw)))


@pytest.mark.parametrize("chunk", [7, 64, 1000])
def test_a_full_screen_program_spanning_points_leaves_no_lines(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(lineindex, "CHUNK", chunk)
    rows = b"".join(b"row-%d\r\n" % i for i in range(1, 60))
    data = b"before\r\n\x1b[?1049h\x1b[H\x1b[J" + rows + b"row-60\x1b[50;1H:q\r\x1b[?1049lafter\r\n"

    def read(a: int, b: int) -> bytes:
        return data[a:b]

    index = LineIndex.at(0)
    for upto in (len(data) // 3, data.index(b"row-60"), len(data)):  # indexed while it ran
        index.extend(read, upto)
    assert index.total(read, len(data)) == 2
    assert index.lines(read, 0, 10, len(data)) == ["before", "after"]
