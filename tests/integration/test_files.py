"""Files and side commands over the session's side channel, never through the terminal.

The "remote" host is this machine (the test sshd on 127.0.0.1), so every transfer is checked
against the real file with plain local reads and writes, byte for byte.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import pwd
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import (
    BadRequest,
    Conflict,
    NotFound,
    PayloadTooLarge,
    RemoteError,
    SessionDisconnected,
)
from sshkeep.common.models.files import (
    ExecRequest,
    ExecResult,
    ReadFileRequest,
    ReadFileResult,
    WriteFileRequest,
    WriteFileResult,
)
from sshkeep.common.models.sessions import (
    OpenSessionRequest,
    ReconnectRequest,
    SendCommandRequest,
    SendKeysRequest,
)
from sshkeep.shim.inline import HEAD_BYTES, INLINE_FILE_BYTES, INLINE_OUTPUT_CHARS
from tests.instance import Instance
from tests.sshd import SshServer
from tests.support import call, call_error, eventually, open_session, wait_state

HOSTILE_NAMES = [
    "with space.txt",
    "it's.txt",
    'double "quoted".txt',
    "dollar $HOME ${X}.txt",
    "back `tick` $(id).txt",
    "-leading-dash.txt",
    "--",
    "ünïcødé ✓ 日本.txt",
    "semi;colon|pipe&amp*star?.txt",
    "new\nline.txt",
]
TRICKY_TEXT = (
    'He said "hi" & it\'s $HOME and ${PATH} and `uname -a` and $(id)\n'
    "\ttabs, back\\slashes \\n, ünïcødé ✓ 日本語 🙂\r\n"
    "no final newline"
)


# --- helpers ----------------------------------------------------------------------------------------


@pytest.fixture
def workdir(sshd: SshServer) -> Iterator[Path]:
    """A local directory the remote (bash) user owns: what it writes there, the test can check."""
    user = pwd.getpwnam(sshd.users["bash"])
    d = Path(tempfile.mkdtemp(prefix="sk-files-", dir="/tmp"))
    os.chown(d, user.pw_uid, user.pw_gid)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def own(path: Path, sshd: SshServer, text: str) -> Path:
    """Create `path` holding `text`, owned by the remote (bash) user."""
    path.write_text(text)
    user = pwd.getpwnam(sshd.users["bash"])
    os.chown(path, user.pw_uid, user.pw_gid)
    return path


def temp_leftovers(d: Path) -> list[Path]:
    """Temporary files of atomic writes left anywhere below `d` (there must be none)."""
    return [p for p in d.rglob("*") if ".sk-" in p.name]


async def read(c: ApiClient, sid: str, path: str | Path, **kw: Any) -> ReadFileResult:
    body = ReadFileRequest(remote_path=str(path), **kw)
    return await c.read_remote_file(sid, body)


async def write(c: ApiClient, sid: str, path: str | Path, content: str | bytes, **kw: Any) -> WriteFileResult:
    if isinstance(content, bytes):
        kw["encoding"] = "base64"
        content = base64.b64encode(content).decode()
    body = WriteFileRequest(remote_path=str(path), content=content, **kw)
    return await c.write_remote_file(sid, body)


async def run_exec(c: ApiClient, sid: str, command: str, timeout: float = 20.0) -> ExecResult:
    return await c.exec_command(sid, ExecRequest(command=command, timeout=timeout))


def channel_opens(instance: Instance, sid: str) -> int:
    """How often the daemon opened a side channel for `sid` (from its JSON log)."""
    return len(
        re.findall(
            rf'"session": "{re.escape(sid)}"[^\n]*"event": "side_channel_opened"', instance.daemon_log()
        )
    )


def side_channels(instance: Instance, sid: str) -> int:
    """How many channels the daemon holds open on this session's master: its connections to the
    master's socket. The master's end of each bears the address the master bound, a temporary
    `<ControlPath>.<random>` that ssh then links into place; St 03 is connected."""
    control = str(instance.paths.control_dir / sid)
    count = 0
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7].startswith(f"{control}.") and fields[5] == "03":
            count += 1
    return count


async def test_large_content_through_mcp_goes_to_a_local_file_or_is_paged(
    shared: Instance, sshd: SshServer, workdir: Path
) -> None:
    """Replies through MCP carry at most the inline limit: a large file is copied to a local
    file (path, size, sha256 and its head inline), a large range or output page is cut with the
    next offset named, and the rest is there, exactly."""
    downloads = shared.paths.state_dir / "downloads"
    text = "".join(f"row {i:07d} ünïcødé ✓\n" for i in range(60_000))  # 1.6 MB, multibyte
    data = text.encode()
    big = workdir / "big.log"
    big.write_bytes(data)
    binary = os.urandom(700_000)
    (workdir / "big.bin").write_bytes(binary)
    async with Client(shared.mcp_params()) as c:
        sid = (await call(c, "open_session", {"host": "bash"}))["session_id"]
        res = await c.call_tool("read_remote_file", {"session_id": sid, "remote_path": str(big)})
        shown = "".join(getattr(x, "text", "") for x in res.content)
        assert len(shown) < HEAD_BYTES + 1024, len(shown)  # megabytes never go inline
        r = await call(c, "read_remote_file", {"session_id": sid, "remote_path": str(big)})
        local = Path(r["local_path"])
        assert local.parent == downloads and await asyncio.to_thread(local.read_bytes) == data
        assert (r["size"], r["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())
        assert r["content"].endswith("\n") and data.startswith(r["content"].encode())
        assert r["length"] == len(r["content"].encode()) <= HEAD_BYTES and r["next_offset"] == r["length"]
        assert str(local) in shown and f"offset={r['length']}" in shown and "inline limit" in shown
        # Reading it again replaces the same copy (one per session and file), never a .part left.
        again = await call(
            c, "read_remote_file", {"session_id": sid, "remote_path": str(big), "limit": 10**8}
        )
        assert again["local_path"] == str(local) and not list(downloads.glob("*.part"))
        # Paging on from next_offset, inline: a range over the limit stops at it, exactly.
        nxt = await call(
            c, "read_remote_file", {"session_id": sid, "remote_path": str(big), "offset": r["next_offset"]}
        )
        start = r["next_offset"]
        assert INLINE_FILE_BYTES - 4 < nxt["length"] <= INLINE_FILE_BYTES and nxt["local_path"] is None
        assert nxt["content"].encode() == data[start : start + nxt["length"]]
        assert nxt["next_offset"] == start + nxt["length"] and "inline limit" in nxt["hint"]
        # Binary: the copy is exact and the head is base64 of the first bytes.
        b = await call(
            c,
            "read_remote_file",
            {"session_id": sid, "remote_path": str(workdir / "big.bin"), "encoding": "base64"},
        )
        assert (
            await asyncio.to_thread(Path(b["local_path"]).read_bytes) == binary
            and b["sha256"] == hashlib.sha256(binary).hexdigest()
        )
        assert base64.b64decode(b["content"]) == binary[: b["length"]] and b["length"] > 0

        # Command output: a page over the limit is cut at a line end, the next page named, and
        # the whole output reaches a local file through local_path.
        done = await call(c, "send_command", {"session_id": sid, "command": "seq 1 300000", "timeout": 30})
        assert done["status"] == "completed"
        cid = done["command_id"]
        p = await call(c, "get_command", {"session_id": sid, "command_id": cid, "limit": 100_000})
        lines = p["output"].split("\n")
        assert len(p["output"]) <= INLINE_OUTPUT_CHARS and lines == [str(i) for i in range(1, len(lines) + 1)]
        assert p["next_offset"] == len(lines) and p["has_more"] and "local_path" in p["hint"]
        p2 = await call(
            c, "get_command", {"session_id": sid, "command_id": cid, "offset": p["next_offset"], "limit": 10}
        )
        assert p2["output"].split("\n") == [str(i) for i in range(len(lines) + 1, len(lines) + 11)]
        saved = await call(
            c, "get_command", {"session_id": sid, "command_id": cid, "local_path": "seq-all.txt"}
        )
        assert (downloads / "seq-all.txt").read_text() == "".join(f"{i}\n" for i in range(1, 300_001))
        assert saved["saved"]["lines"] == 300_000
        # One line longer than the limit: its start, and local_path for the rest.
        long = await call(
            c,
            "send_command",
            {"session_id": sid, "command": "head -c 1000000 /dev/zero | tr '\\0' x; echo", "timeout": 30},
        )
        one = await call(c, "get_command", {"session_id": sid, "command_id": long["command_id"], "limit": 1})
        assert one["output"] == "x" * INLINE_OUTPUT_CHARS and "local_path" in one["hint"]
        assert "of its 1000000 characters" in one["hint"]
        # A job's output pages the same way.
        job = await call(
            c,
            "start_job",
            {"session_id": sid, "command": "head -c 600000 /dev/zero | tr '\\0' j | fold -w 3000"},
        )
        page = await call(c, "get_job", {"job_id": job["job_id"], "wait": 20, "limit": 1000})
        rows = page["output"].split("\n")
        assert page["status"] == "exited" and len(page["output"]) <= INLINE_OUTPUT_CHARS
        assert rows == ["j" * 3000] * len(rows) and page["next_offset"] == len(rows) and page["has_more"]
        assert f"get_job(job_id={job['job_id']!r}, offset={len(rows)})" in page["hint"]


# --- the "must show", through the real MCP client --------------------------------------------


async def test_exact_transfers_through_mcp_leave_the_screen_alone(instance: Instance, workdir: Path) -> None:
    line = "line {:06d}: quotes ' \" $HOME `x` \\ ünïcødé ✓ 日本 — tab\there\n"
    per_line = len(line.format(0).encode())
    text = "".join(line.format(i) for i in range(1_300_000 // per_line + 1))
    assert 1_300_000 <= len(text.encode()) < 1_400_000
    big = workdir / "big.txt"
    big.write_bytes(text.encode())
    binary = bytes(range(256)) * 64
    (workdir / "all-bytes.bin").write_bytes(binary)

    async with Client(instance.mcp_params()) as c:
        info = await call(c, "open_session", {"host": "bash"})
        assert info["state"] == "ready", info
        sid = info["session_id"]
        done = await call(c, "send_command", {"session_id": sid, "command": "echo before-transfers"})
        assert done["output"] == "before-transfers"
        before = await call(c, "get_snapshot", {"session_id": sid})
        assert "before-transfers" in before["screen"]

        # A 1.3 MB text file, exactly: over the MCP inline limit, so it comes as a local copy.
        r = await call(c, "read_remote_file", {"session_id": sid, "remote_path": str(big)})
        assert await asyncio.to_thread(Path(r["local_path"]).read_bytes) == text.encode()
        assert r["size"] == len(text.encode()) and text.startswith(r["content"])
        assert r["sha256"] == hashlib.sha256(text.encode()).hexdigest()
        assert r["truncated"] is True and r["next_offset"] == r["length"] == len(r["content"].encode())
        assert r["resolved_path"] == str(big)
        # Pages within the inline limit come inline, as they are.
        r = await call(
            c, "read_remote_file", {"session_id": sid, "remote_path": str(big), "limit": INLINE_FILE_BYTES}
        )
        assert r["content"].encode() == text.encode()[: r["length"]] and r["length"] > INLINE_FILE_BYTES - 4

        # 16 KB holding every byte value, exactly, as base64; refused as text with a hint.
        r = await call(
            c,
            "read_remote_file",
            {"session_id": sid, "remote_path": str(workdir / "all-bytes.bin"), "encoding": "base64"},
        )
        assert base64.b64decode(r["content"]) == binary
        assert r["sha256"] == hashlib.sha256(binary).hexdigest()
        err = await call_error(
            c, "read_remote_file", {"session_id": sid, "remote_path": str(workdir / "all-bytes.bin")}
        )
        assert "base64" in err and "all-bytes.bin" in err

        # A 300 KB binary write lands exactly.
        payload = os.urandom(300 * 1024)
        w = await call(
            c,
            "write_remote_file",
            {
                "session_id": sid,
                "remote_path": str(workdir / "upload.bin"),
                "content": base64.b64encode(payload).decode(),
                "encoding": "base64",
            },
        )
        assert (workdir / "upload.bin").read_bytes() == payload
        assert w["bytes_written"] == w["size"] == len(payload)
        assert w["sha256"] == hashlib.sha256(payload).hexdigest()
        assert w["created"] is True and w["atomic"] is True

        # Text with quotes, $, backticks and unicode, to a path with spaces and quotes.
        weird = workdir / "dir with spaces" / 'it\'s a "quoted" $HOME `name`.txt'
        w = await call(
            c,
            "write_remote_file",
            {"session_id": sid, "remote_path": str(weird), "content": TRICKY_TEXT, "make_parents": True},
        )
        assert weird.read_bytes() == TRICKY_TEXT.encode()
        r = await call(c, "read_remote_file", {"session_id": sid, "remote_path": str(weird)})
        assert r["content"] == TRICKY_TEXT

        # Append.
        log = workdir / "append.log"
        await call(c, "write_remote_file", {"session_id": sid, "remote_path": str(log), "content": "first\n"})
        w = await call(
            c,
            "write_remote_file",
            {"session_id": sid, "remote_path": str(log), "content": "second ✓\n", "append": True},
        )
        assert w["appended"] is True and w["size"] == len("first\nsecond ✓\n".encode())
        assert log.read_text() == "first\nsecond ✓\n"

        # Hostile names: written, listed by the shell exactly, read back.
        hostile = workdir / "hostile"
        for name in HOSTILE_NAMES:
            content = f"content of {name!r}\n"
            await call(
                c,
                "write_remote_file",
                {
                    "session_id": sid,
                    "remote_path": str(hostile / name),
                    "content": content,
                    "make_parents": True,
                },
            )
            assert (hostile / name).read_text() == content, name
            r = await call(c, "read_remote_file", {"session_id": sid, "remote_path": str(hostile / name)})
            assert r["content"] == content, name
        assert sorted(os.listdir(hostile)) == sorted(HOSTILE_NAMES)

        # A missing file is a tool error naming the path.
        missing = str(workdir / "no such 'file'.txt")
        err = await call_error(c, "read_remote_file", {"session_id": sid, "remote_path": missing})
        assert missing in err and "no such file" in err

        # Nothing of this went through the terminal.
        after = await call(c, "get_snapshot", {"session_id": sid})
        assert after["screen"] == before["screen"]
        assert (after["cursor_x"], after["cursor_y"]) == (before["cursor_x"], before["cursor_y"])
        done = await call(c, "send_command", {"session_id": sid, "command": "echo still-fine"})
        assert (done["status"], done["output"]) == ("completed", "still-fine")

    # No temporary file was left behind by the atomic writes.
    assert temp_leftovers(workdir) == []


async def test_exec_command_through_mcp(instance: Instance) -> None:
    async with Client(instance.mcp_params()) as c:
        info = await call(c, "open_session", {"host": "bash"})
        sid = info["session_id"]
        before = await call(c, "get_snapshot", {"session_id": sid})
        r = await call(
            c,
            "exec_command",
            {"session_id": sid, "command": "echo 'out ✓'; echo \"err $((6*7))\" >&2; exit 3"},
        )
        assert (r["exit_code"], r["stdout"], r["stderr"], r["timed_out"]) == (3, "out ✓\n", "err 42\n", False)
        after = await call(c, "get_snapshot", {"session_id": sid})
        assert after["screen"] == before["screen"]
        tools = {t.name: t for t in (await c.list_tools()).tools}
        for name in ("read_remote_file", "write_remote_file", "exec_command"):
            assert tools[name].description and tools[name].output_schema, name
        ann = tools["read_remote_file"].annotations
        assert ann is not None and ann.read_only_hint is True
        # session_id or host; content or local_path: checked when called.
        assert tools["write_remote_file"].input_schema["required"] == ["remote_path"]


# --- write semantics --------------------------------------------------------------------------------


async def test_write_semantics(instance: Instance, workdir: Path, sshd: SshServer) -> None:
    async with instance.client() as c:
        sid = await open_session(c)

        # An existing file keeps its mode; the replacement is a new inode (temp file + rename).
        f = own(workdir / "kept-mode.sh", sshd, "old\n")
        f.chmod(0o750)
        inode = f.stat().st_ino
        w = await write(c, sid, f, "new content\n")
        assert f.read_text() == "new content\n"
        assert stat.S_IMODE(f.stat().st_mode) == 0o750 and w.mode == "0750"
        assert f.stat().st_ino != inode
        assert w.created is False and w.atomic is True

        # An explicit mode wins, exactly (no umask).
        w = await write(c, sid, f, "x", mode="0604")
        assert stat.S_IMODE(f.stat().st_mode) == 0o604 and w.mode == "0604"
        w = await write(c, sid, workdir / "new-exec", "#!/bin/sh\n", mode="755")
        assert stat.S_IMODE((workdir / "new-exec").stat().st_mode) == 0o755

        # expected_sha256: refuse when the file changed since it was read.
        r = await read(c, sid, f)
        assert r.sha256 == hashlib.sha256(b"x").hexdigest()
        f.write_text("changed by someone else")
        with pytest.raises(Conflict) as exc:
            await write(c, sid, f, "mine", expected_sha256=r.sha256)
        assert str(f) in exc.value.message
        assert f.read_text() == "changed by someone else"
        fresh = await read(c, sid, f)
        await write(c, sid, f, "mine", expected_sha256=fresh.sha256)
        assert f.read_text() == "mine"

        # make_parents, and the error without it.
        deep = workdir / "a" / "b c" / "d" / "file.txt"
        with pytest.raises(NotFound) as nf:
            await write(c, sid, deep, "deep")
        assert "make_parents" in nf.value.hint and str(deep) in nf.value.message
        await write(c, sid, deep, "deep", make_parents=True)
        assert deep.read_text() == "deep"

        # A symlink is followed: its target is replaced, the link stays a link.
        target = own(workdir / "target.txt", sshd, "t0")
        link = workdir / "link.txt"
        link.symlink_to(target)
        w = await write(c, sid, link, "through the link")
        assert link.is_symlink() and target.read_text() == "through the link"
        assert w.resolved_path == str(target)

        # Empty files, and ~/ paths (the remote home directory).
        await write(c, sid, workdir / "empty", "")
        assert (workdir / "empty").read_bytes() == b""
        assert (await read(c, sid, workdir / "empty")).content == ""
        home = Path(pwd.getpwnam(sshd.users["bash"]).pw_dir)
        name = f"sk-files-test-{os.getpid()}.txt"
        try:
            w = await write(c, sid, f"~/{name}", "in home")
            assert (home / name).read_text() == "in home" and w.resolved_path == str(home / name)
            assert (await read(c, sid, name)).content == "in home"  # relative = home too
        finally:
            (home / name).unlink(missing_ok=True)

        # CRLF and every byte survive a base64 round trip through write then read.
        blob = bytes(range(256)) * 3 + b"\r\n\r\n\x00"
        await write(c, sid, workdir / "blob", blob)
        got = await read(c, sid, workdir / "blob", encoding="base64")
        assert base64.b64decode(got.content) == blob


async def test_paging(instance: Instance, workdir: Path) -> None:
    text = "".join(f"{i}: ünïcødé ✓ 日本語\n" for i in range(2000))
    data = text.encode()
    (workdir / "paged.txt").write_bytes(data)
    async with instance.client() as c:
        sid = await open_session(c)
        # Text pages never split a character; joined they are the file.
        pages: list[str] = []
        offset = 0
        while True:
            r = await read(c, sid, workdir / "paged.txt", offset=offset, limit=1001)
            assert r.size == len(data) and r.offset == offset
            assert r.sha256 is None or (offset == 0 and not r.truncated)
            pages.append(r.content)
            if not r.truncated:
                break
            assert r.next_offset is not None and 0 < r.next_offset - offset <= 1001
            offset = r.next_offset
        assert "".join(pages) == text and len(pages) > 10
        # base64 pages are exact byte ranges.
        r = await read(c, sid, workdir / "paged.txt", encoding="base64", offset=5, limit=7)
        assert base64.b64decode(r.content) == data[5:12] and r.next_offset == 12
        # An offset inside a character is refused in text mode, with a hint.
        cut = data.index("ü".encode()) + 1
        with pytest.raises(BadRequest) as exc:
            await read(c, sid, workdir / "paged.txt", offset=cut, limit=10)
        assert "offset" in exc.value.message
        # Past the end: empty, not an error.
        r = await read(c, sid, workdir / "paged.txt", offset=len(data) + 10)
        assert (r.content, r.length, r.truncated) == ("", 0, False)


async def test_remote_errors_name_the_path(instance: Instance, workdir: Path, sshd: SshServer) -> None:
    async with instance.client() as c:
        sid = await open_session(c)
        with pytest.raises(NotFound) as nf:
            await read(c, sid, workdir / "missing.txt")
        assert str(workdir / "missing.txt") in nf.value.message

        with pytest.raises(BadRequest) as bad:
            await read(c, sid, workdir)
        assert "is a directory" in bad.value.message and str(workdir) in bad.value.message
        with pytest.raises(BadRequest) as bad:
            await write(c, sid, workdir, "x")
        assert "directory" in bad.value.message

        # The remote user is not root: /etc/shadow and /root are closed to it.
        with pytest.raises(RemoteError) as denied:
            await read(c, sid, "/etc/shadow")
        assert "/etc/shadow" in denied.value.message and "permission denied" in denied.value.message
        with pytest.raises(RemoteError) as denied:
            await write(c, sid, "/root/sk-denied.txt", "x")
        assert "/root/sk-denied.txt" in denied.value.message and "permission denied" in denied.value.message
        assert "sk-denied.txt" not in os.listdir("/root")

        # A read-only file is not replaced behind its owner's back, though its directory is writable.
        ro = own(workdir / "read-only.txt", sshd, "keep me")
        ro.chmod(0o444)
        with pytest.raises(RemoteError) as denied:
            await write(c, sid, ro, "overwritten")
        assert str(ro) in denied.value.message and "permission denied" in denied.value.message
        assert ro.read_text() == "keep me"

        # A FIFO would block the SFTP server: refused up front.
        fifo = workdir / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(BadRequest) as bad:
            await read(c, sid, fifo)
        assert "regular file" in bad.value.message

        # Bad input is refused before anything moves.
        with pytest.raises(BadRequest):
            await write(c, sid, workdir / "b64", "not base64 !!", encoding="base64")
        assert not (workdir / "b64").exists()
        assert temp_leftovers(workdir) == []

        # The session still works, and the channel survived the errors.
        assert (await read(c, sid, ro)).content == "keep me"


async def test_transfer_limit_is_configurable(instance: Instance, workdir: Path) -> None:
    (workdir / "big.bin").write_bytes(b"z" * 300_000)
    config = {"connections": instance.connections, "settings": {"max_transfer_mb": 0.1}}
    path = instance.home / "config.yml"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    async with instance.client() as c:
        sid = await open_session(c)
        with pytest.raises(PayloadTooLarge) as exc:
            await read(c, sid, workdir / "big.bin")
        assert str(workdir / "big.bin") in exc.value.message and "limit" in exc.value.message
        assert "offset" in exc.value.hint
        r = await read(c, sid, workdir / "big.bin", limit=100_000)
        assert r.length == 100_000 and r.truncated and r.next_offset == 100_000
        with pytest.raises(PayloadTooLarge):
            await write(c, sid, workdir / "too-big.bin", b"y" * 200_000)
        assert not (workdir / "too-big.bin").exists()


# --- side commands ----------------------------------------------------------------------------------


async def test_exec_beside_a_running_command(instance: Instance) -> None:
    async with instance.client() as c:
        sid = await open_session(c)
        await c.send_command(sid, SendCommandRequest(command="cd /tmp && export SK_IN_PANE=1"))
        running = await c.send_command(sid, SendCommandRequest(command="sleep 30; echo slept", timeout=0.5))
        assert running.status == "running"
        before = await c.get_snapshot(sid)

        r = await run_exec(c, sid, "pwd; echo \"[$SK_IN_PANE]\"; printf 'e1\\ne2\\n' >&2; exit 5")
        # Its own shell: the login directory and environment, not the pane's.
        assert r.exit_code == 5 and r.stderr == "e1\ne2\n" and r.timed_out is False
        assert r.stdout.splitlines()[1] == "[]" and r.stdout.splitlines()[0] != "/tmp"
        r = await run_exec(c, sid, "head -c 3000000 /dev/zero | tr '\\0' a")
        assert r.exit_code == 0 and r.stdout_truncated and len(r.stdout) == 1024 * 1024
        assert r.hint and "read_remote_file" in r.hint

        r = await run_exec(c, sid, "sleep 20", timeout=1)
        assert r.timed_out is True and r.exit_code is None and r.hint

        after = await c.get_snapshot(sid)
        assert after.screen == before.screen
        info = await c.get_session(sid)
        assert info.state == "busy" and info.running_command_id == running.command_id
        stopped = await c.interrupt_command(sid)
        assert stopped.status == "interrupted"
        done = await c.send_command(sid, SendCommandRequest(command='pwd; echo "$SK_IN_PANE"'))
        assert done.output == "/tmp\n1"


# --- life of the side channel --------------------------------------------------------------------------


async def test_one_channel_reused_released_on_exit_and_reopened(instance: Instance, workdir: Path) -> None:
    (workdir / "f.txt").write_text("hello")
    async with instance.client() as c:
        sid = await open_session(c)
        for _ in range(5):
            assert (await read(c, sid, workdir / "f.txt")).content == "hello"
        await write(c, sid, workdir / "g.txt", "written")
        assert channel_opens(instance, sid) == 1
        assert side_channels(instance, sid) == 1

        # The remote shell exits while the side channel is open: the pane's ssh must still end.
        await c.send_keys(sid, SendKeysRequest(keys=["exit", "Enter"]))

        await wait_state(c, sid, "disconnected")
        assert '"event": "side_channel_released"' in instance.daemon_log()
        with pytest.raises(SessionDisconnected) as exc:
            await read(c, sid, workdir / "f.txt")
        assert "reconnect_session" in exc.value.hint
        with pytest.raises(SessionDisconnected):
            await run_exec(c, sid, "true")

        # After a reconnect the channel reopens over the new master.
        info = await c.reconnect_session(sid, ReconnectRequest())
        assert info.state == "ready"
        assert (await read(c, sid, workdir / "f.txt")).content == "hello"
        assert channel_opens(instance, sid) == 2

        await c.close_session(sid)

        async def no_side_channels() -> bool:
            return side_channels(instance, sid) == 0

        await eventually(no_side_channels, "the side channel to close with the session", timeout=20)


async def test_password_session_needs_no_new_login(
    instance: Instance, sshd: SshServer, workdir: Path
) -> None:
    (workdir / "pw.txt").write_text("over the password login")
    os.chmod(workdir / "pw.txt", 0o644)
    os.chmod(workdir, 0o755)  # readable by the password user too
    instance.write_config({**instance.connections, "pw": sshd.password_connection()})
    async with instance.client() as c:
        info = await c.open_session(OpenSessionRequest(host="pw"))
        sid = info.session_id
        if info.state == "waiting_input":
            assert info.question is not None and info.question.kind == "password", info
            await c.send_keys(sid, SendKeysRequest(keys=[sshd.password, "Enter"]))
            await wait_state(c, sid, "ready")  # the password login
        logins = sshd.log().count(f"Accepted password for {sshd.password_user}")
        r = await read(c, sid, workdir / "pw.txt")
        assert r.content == "over the password login"
        e = await run_exec(c, sid, "id -un")
        assert e.stdout == f"{sshd.password_user}\n"
        # Both went over the existing connection: sshd saw no further login.
        assert sshd.log().count(f"Accepted password for {sshd.password_user}") == logins


async def test_concurrent_transfers_and_daemon_restart(instance: Instance, workdir: Path) -> None:
    blobs = {f"blob-{i}.bin": os.urandom(50_000 + i * 7919) for i in range(6)}
    for name, blob in blobs.items():
        (workdir / name).write_bytes(blob)
    async with instance.client() as c:
        sid = await open_session(c)

        async def roundtrip(name: str) -> bytes:
            got = await read(c, sid, workdir / name, encoding="base64")
            await write(c, sid, workdir / f"copy-{name}", base64.b64decode(got.content))
            return base64.b64decode(got.content)

        results = await asyncio.gather(*(roundtrip(n) for n in blobs), run_exec(c, sid, "echo beside"))
        assert dict(zip(blobs, results[:-1], strict=True)) == blobs
        assert isinstance(results[-1], ExecResult) and results[-1].stdout == "beside\n"
        for name, blob in blobs.items():
            assert (workdir / f"copy-{name}").read_bytes() == blob
        assert channel_opens(instance, sid) == 1

    # A restarted daemon adopts the session and opens a fresh channel over the same master.
    instance.stop()
    instance.start()
    async with instance.client() as c:
        got = await read(c, sid, workdir / "blob-0.bin", encoding="base64")
        assert base64.b64decode(got.content) == blobs["blob-0.bin"]
        assert (await run_exec(c, sid, "echo adopted")).stdout == "adopted\n"

        async def only_the_new_channel() -> bool:
            return side_channels(instance, sid) == 1

        await eventually(only_the_new_channel, "the old daemon's side channel to end", timeout=20)
