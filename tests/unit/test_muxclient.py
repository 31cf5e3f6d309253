"""The ControlMaster protocol client (daemon/files/muxclient.py): its messages byte for byte, the
flags read from `ssh -G`, and its answers to a master that says yes, no, another version or
nothing, over a real Unix socket with real descriptors passed. The same client against OpenSSH's
own master is tests/integration/test_side_commands.py."""

from __future__ import annotations

import array
import asyncio
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sshkeep.daemon.files import muxclient
from sshkeep.daemon.files.muxclient import SessionFlags

SSH_G = """\
user deploy
forwardagent no
forwardx11 no
sendenv LANG
sendenv LC_*
sendenv SK_?X
setenv FOO=bar
setenv BAZ=two words
"""


def _strings(body: bytes, pos: int) -> tuple[bytes, int]:
    n = struct.unpack(">I", body[pos : pos + 4])[0]
    return body[pos + 4 : pos + 4 + n], pos + 4 + n


def test_hello_is_type_and_version_framed() -> None:
    assert muxclient.hello() == struct.pack(">III", 8, 1, 4)


def test_new_session_lays_out_what_the_master_reads() -> None:
    flags = SessionFlags(env=("LANG=C.UTF-8", "FOO=bar"), forward_agent=True)
    msg = muxclient.new_session(3, "echo 'a b'", flags)
    assert struct.unpack(">I", msg[:4])[0] == len(msg) - 4
    body = msg[4:]
    kind, rid = struct.unpack(">II", body[:8])
    assert (kind, rid) == (0x10000002, 3)
    reserved, pos = _strings(body, 8)
    assert reserved == b""
    tty, x11, agent, subsystem, escape = struct.unpack(">IIIII", body[pos : pos + 20])
    assert (tty, x11, agent, subsystem, escape) == (0, 0, 1, 0, 0xFFFFFFFF)
    term, pos = _strings(body, pos + 20)
    command, pos = _strings(body, pos)
    first, pos = _strings(body, pos)
    second, pos = _strings(body, pos)
    assert (term, command, first, second, pos) == (b"", b"echo 'a b'", b"LANG=C.UTF-8", b"FOO=bar", len(body))
    sub = muxclient.new_session(4, "sftp", SessionFlags(), subsystem=True)[4:]
    # The subsystem flag comes after type, id, reserved, tty, X11 and agent.
    assert struct.unpack(">I", sub[24:28])[0] == 1


def test_flags_are_what_ssh_would_send() -> None:
    env = {"LANG": "C.UTF-8", "LC_ALL": "C", "LCX": "no", "SK_AX": "1", "SK_ABX": "no", "HOME": "/root"}
    flags = muxclient.session_flags(SSH_G, env)
    assert flags.env == ("LANG=C.UTF-8", "LC_ALL=C", "SK_AX=1", "FOO=bar", "BAZ=two words")
    assert not flags.forward_agent and not flags.forward_x11
    on = muxclient.session_flags("forwardagent /run/agent.sock\nforwardx11 yes\n", {})
    assert on.forward_agent and on.forward_x11 and on.env == ()


def test_env_patterns_know_only_star_and_question_mark() -> None:
    assert muxclient.env_pattern("LC_*").fullmatch("LC_ALL")
    assert muxclient.env_pattern("A.B").fullmatch("A.B")
    assert not muxclient.env_pattern("A.B").fullmatch("AxB")
    assert not muxclient.env_pattern("[AB]").fullmatch("A")


def test_replies_parse() -> None:
    opened = muxclient.parse_reply(struct.pack(">III", 0x80000006, 1, 42))
    assert (opened.kind, opened.first, opened.number()) == (0x80000006, 1, 42)
    failed = muxclient.parse_reply(struct.pack(">III", 0x80000003, 1, 5) + b"nope!")
    assert failed.text() == "nope!"
    with pytest.raises(muxclient.MuxError):
        muxclient.parse_reply(b"\0\0")


# --- against a master on a real socket ------------------------------------------------------------------

Master = Callable[[socket.socket], None]


def _read_message(conn: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    return exactly(struct.unpack(">I", exactly(4))[0])


def _send(conn: socket.socket, *words: int, tail: bytes = b"") -> None:
    body = struct.pack(f">{len(words)}I", *words) + tail
    conn.sendall(struct.pack(">I", len(body)) + body)


def _receive_fd(conn: socket.socket) -> int:
    fds = array.array("i")
    _msg, ancillary, _flags, _addr = conn.recvmsg(1, socket.CMSG_LEN(fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: fds.itemsize])
    return fds[0]


@pytest.fixture
def master(tmp_path: Path) -> Iterator[Callable[[Master], Path]]:
    """A listening socket whose one connection `behave` answers, in a thread."""
    threads: list[threading.Thread] = []
    socks: list[socket.socket] = []

    def start(behave: Master) -> Path:
        path = tmp_path / "cm.sock"
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(str(path))
        srv.listen(1)
        socks.append(srv)

        def serve() -> None:
            conn, _ = srv.accept()
            with conn:
                behave(conn)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        threads.append(t)
        return path

    yield start
    for t in threads:
        t.join(5)
    for s in socks:
        s.close()


def _take_request(conn: socket.socket) -> bytes:
    """Both hellos, then the client's NEW_SESSION (its descriptors are still to be received)."""
    _send(conn, 1, 4)
    assert _read_message(conn) == struct.pack(">II", 1, 4)
    request = _read_message(conn)
    assert struct.unpack(">I", request[:4])[0] == 0x10000002
    return request


def _exec_master(status: int | None, out: bytes, err: bytes) -> Master:
    """Says yes, writes `out` and `err` into the descriptors it got, then exits with `status`."""

    def behave(conn: socket.socket) -> None:
        request = _take_request(conn)
        fds = [_receive_fd(conn) for _ in range(3)]
        assert os.read(fds[0], 10) == b""  # stdin is empty
        os.write(fds[1], out)
        os.write(fds[2], err)
        for fd in fds:
            os.close(fd)
        rid = struct.unpack(">I", request[4:8])[0]
        _send(conn, 0x80000006, rid, 9)
        if status is not None:
            _send(conn, 0x80000004, 9, status)

    return behave


async def _run(path: Path) -> tuple[int, bytes, bytes]:
    null = os.open(os.devnull, os.O_RDONLY)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        mux = await muxclient.open_session(path, "true", SessionFlags(), (null, out_w, err_w))
    finally:
        for fd in (null, out_w, err_w):
            os.close(fd)
    status = await mux.wait()
    mux.close()
    with os.fdopen(out_r, "rb") as o, os.fdopen(err_r, "rb") as e:
        return status, o.read(), e.read()


def test_a_command_runs_with_the_descriptors_given(master: Callable[[Master], Path]) -> None:
    path = master(_exec_master(7, b"out\n", b"err\n"))
    assert asyncio.run(_run(path)) == (7, b"out\n", b"err\n")


def test_no_exit_message_is_255_as_ssh_says(master: Callable[[Master], Path]) -> None:
    path = master(_exec_master(None, b"", b""))
    assert asyncio.run(_run(path))[0] == 255


def test_another_protocol_version_is_refused_before_any_command(master: Callable[[Master], Path]) -> None:
    path = master(lambda conn: _send(conn, 1, 3))
    with pytest.raises(muxclient.MuxError, match="version 3") as e:
        asyncio.run(_run(path))
    assert not e.value.started


def test_a_refusal_says_why(master: Callable[[Master], Path]) -> None:
    def behave(conn: socket.socket) -> None:
        _take_request(conn)
        for _ in range(3):
            os.close(_receive_fd(conn))
        _send(conn, 0x80000002, 1, tail=struct.pack(">I", 17) + b"Permission denied")

    path = master(behave)
    with pytest.raises(muxclient.MuxError, match="Permission denied") as e:
        asyncio.run(_run(path))
    assert not e.value.started


def test_a_master_that_hangs_up_after_the_request(master: Callable[[Master], Path]) -> None:
    def behave(conn: socket.socket) -> None:
        _take_request(conn)

    path = master(behave)
    with pytest.raises(muxclient.MuxError) as e:
        asyncio.run(_run(path))
    assert e.value.started  # the command may have gone out: never sent again


def test_nothing_listening_is_no_master(tmp_path: Path) -> None:
    with pytest.raises(muxclient.NoMaster, match="nothing answers"):
        asyncio.run(_run(tmp_path / "absent.sock"))
