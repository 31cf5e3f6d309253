"""Agent economy through the real MCP client: fewer calls, fewer tokens, the right user.

Every test drives `sshkeep mcp` over stdio with the MCP SDK's client against the test sshd.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from mcp import Client

from tests.instance import Instance
from tests.sshd import SshServer
from tests.support import call, call_error


def reply_size(res: Any) -> int:
    """What a reply costs an agent: its text plus its structured content, in characters."""
    text = "".join(getattr(x, "text", "") for x in res.content)
    return len(text) + (len(json.dumps(res.structured_content)) if res.structured_content is not None else 0)


async def sized(c: Client, name: str, args: dict[str, Any]) -> tuple[dict[str, Any], str, int]:
    res = await c.call_tool(name, args)
    text = "".join(getattr(x, "text", "") for x in res.content)
    assert not res.is_error, f"{name}({args}) failed: {text}"
    return dict(res.structured_content or {}), text, reply_size(res)


async def test_explicit_username_and_port_win_over_the_config(instance: Instance, sshd: SshServer) -> None:
    async with Client(instance.mcp_params()) as c:
        # The `bash` entry logs in as skbash; the test key lets in every test user.
        info = await call(c, "open_session", {"host": "bash", "username": sshd.users["zsh"]})
        assert info["state"] == "ready", info
        assert info["login"] == f"{sshd.users['zsh']}@{sshd.host}:{sshd.port}"
        r = await call(c, "send_command", {"session_id": info["session_id"], "command": "whoami"})
        assert r["output"] == sshd.users["zsh"]
        plain = await call(c, "open_session", {"host": "bash"})
        assert plain["login"] == f"{sshd.users['bash']}@{sshd.host}:{sshd.port}"
        # An explicit port wins too: nothing listens on port 1, so the login fails (with the
        # config's port it would succeed).
        text = await call_error(c, "open_session", {"host": "bash", "port": 1})
        assert text.startswith("[connect_failed]") and "\nNext: " in text
        info = await call(c, "open_session", {"host": "bash", "port": sshd.port})
        assert info["state"] == "ready" and info["login"].endswith(f":{sshd.port}")


async def test_send_keys_returns_the_result_of_the_command_it_answered(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        at = {"host": "bash"}
        script = "read -r -s -p 'Password: ' pw; echo; read -r -p 'Apply? [y/N] ' a; echo \"len=${#pw} a=$a\""
        r = await call(c, "send_command", {**at, "command": script, "timeout": 5})
        sid = r["session_id"]
        assert r["status"] == "waiting_input" and r["question"]["kind"] == "password", r
        assert "answer_secret" in r["hint"] or "sshkeep answer" in r["hint"]  # never the secret itself
        k = await call(c, "send_keys", {"session_id": sid, "keys": ["hunter2", "Enter"]})
        res = k["result"]
        assert res["status"] == "waiting_input" and res["question"]["kind"] == "confirm", k
        assert '"y"' in res["hint"] and '"n"' in res["hint"]
        k = await call(c, "send_keys", {"session_id": sid, "keys": ["y", "Enter"]})
        res = k["result"]
        assert (res["status"], res["exit_code"], res["command_id"]) == ("completed", 0, r["command_id"])
        assert "len=7 a=y" in res["output"]
        assert "hunter2" not in res["output"]
        # A command typed with send_keys at the prompt gets an id and its own result.
        k = await call(c, "send_keys", {"session_id": sid, "keys": ["echo typed-$((6*7))", "Enter"]})
        res = k["result"]
        assert (res["status"], res["exit_code"], res["output"]) == ("completed", 0, "typed-42"), k
        assert res["command_id"] != r["command_id"]


async def test_busy_with_typed_input_names_the_command_to_follow(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        info = await call(c, "open_session", {"host": "bash"})
        sid = info["session_id"]
        k = await call(c, "send_keys", {"session_id": sid, "keys": ["sleep 30", "Enter"], "wait": 0.5})
        cid = k["result"]["command_id"]
        assert k["running_command_id"] == cid
        text = await call_error(c, "send_command", {"session_id": sid, "command": "echo x"})
        assert text.startswith("[session_busy]") and cid in text and f"command_id={cid!r}" in text
        r = await call(c, "interrupt_command", {"session_id": sid})
        assert r["status"] == "interrupted" and r["command_id"] == cid


async def test_search_finds_one_line_in_50000_in_one_call(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        r = await call(
            c,
            "send_command",
            {
                "host": "bash",
                "command": "seq 1 50000 | sed 's/^31337$/ERROR: disk quota exceeded/'",
                "timeout": 30,
            },
        )
        assert r["status"] == "completed" and r["total_lines"] == 50000
        args = {
            "session_id": r["session_id"],
            "command_id": r["command_id"],
            "pattern": "ERROR",
            "context": 2,
        }
        s, text, size = await sized(c, "search_output", args)
        assert s["total_matches"] == 1 and s["complete"] is True
        m = s["matches"][0]
        assert (m["line"], m["text"]) == (31336, "ERROR: disk quota exceeded")
        assert m["before"] == ["31335", "31336"] and m["after"] == ["31338", "31339"]
        assert "ERROR: disk quota exceeded" in text
        assert size < 2000, size  # a few hundred tokens, not 200 k of pages
        # The line number is the get_command offset of that line.
        page = await call(
            c,
            "get_command",
            {"session_id": r["session_id"], "command_id": r["command_id"], "offset": m["line"], "limit": 1},
        )
        assert page["output"] == "ERROR: disk quota exceeded"
        # A catastrophic pattern does not hang the daemon: it answers, and then answers again.
        bad = await call(c, "search_output", {"session_id": r["session_id"], "pattern": "^(a|a?)+$"})
        assert bad["total_matches"] == 0
        again = await call(c, "send_command", {"session_id": r["session_id"], "command": "echo alive"})
        assert again["output"] == "alive"


async def test_binary_to_a_local_file_and_back(shared: Instance) -> None:
    downloads = shared.paths.state_dir / "downloads"
    async with Client(shared.mcp_params()) as c:
        r = await call(
            c,
            "send_command",
            {
                "host": "bash",
                "command": "head -c 2097152 /dev/urandom > /tmp/sk-eco.bin && sha256sum /tmp/sk-eco.bin",
            },
        )
        remote_sha = r["output"].split()[0]
        sid = r["session_id"]
        f, _text, size = await sized(
            c,
            "read_remote_file",
            {"session_id": sid, "remote_path": "/tmp/sk-eco.bin", "local_path": "eco.bin"},
        )
        assert size < 1024, size
        local = downloads / "eco.bin"
        assert f["local_path"] == str(local) and f["size"] == 2097152 and f["sha256"] == remote_sha
        assert hashlib.sha256(local.read_bytes()).hexdigest() == remote_sha
        assert not (downloads / "eco.bin.part").exists()
        # Metadata only: size, sha256, mode, mtime and no content.
        meta, _text, size = await sized(
            c,
            "read_remote_file",
            {"session_id": sid, "remote_path": "/tmp/sk-eco.bin", "metadata_only": True},
        )
        assert (meta["size"], meta["sha256"]) == (2097152, remote_sha) and meta["mode"] and meta["mtime"]
        assert meta.get("content", "") == "" and size < 1024
        # And back up again, from the local file.
        w, _text, size = await sized(
            c,
            "write_remote_file",
            {"session_id": sid, "remote_path": "/tmp/sk-eco-copy.bin", "local_path": str(local)},
        )
        assert (w["bytes_written"], w["sha256"], w["atomic"]) == (2097152, remote_sha, True) and size < 1024
        r = await call(c, "exec_command", {"session_id": sid, "command": "sha256sum /tmp/sk-eco-copy.bin"})
        assert r["stdout"].split()[0] == remote_sha
        # Command output can go to a local file too.
        r = await call(
            c, "send_command", {"session_id": sid, "command": "seq 1 3000", "local_path": "seq.txt"}
        )
        assert r["output"] == "" and r["saved"]["lines"] == 3000
        assert (downloads / "seq.txt").read_text() == "".join(f"{i}\n" for i in range(1, 3001))


async def test_local_paths_outside_the_roots_are_refused(shared: Instance, tmp_path: Path) -> None:
    downloads = shared.paths.state_dir / "downloads"
    async with Client(shared.mcp_params()) as c:
        r = await call(c, "send_command", {"host": "bash", "command": "echo hi > /tmp/sk-eco.txt"})
        sid = r["session_id"]
        for where in (str(tmp_path / "x.bin"), "../escape.bin", "/etc/sk-eco"):
            text = await call_error(
                c,
                "read_remote_file",
                {"session_id": sid, "remote_path": "/tmp/sk-eco.txt", "local_path": where},
            )
            assert text.startswith("[forbidden]") and str(downloads) in text and "\nNext: " in text, text
            assert "local_roots" in text
        assert not (tmp_path / "x.bin").exists()
        text = await call_error(
            c, "write_remote_file", {"session_id": sid, "remote_path": "/tmp/x", "local_path": "/etc/passwd"}
        )
        assert text.startswith("[forbidden]")


async def test_top_and_vim_quit_in_under_2_kb_of_replies(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        info = await call(c, "open_session", {"host": "bash"})
        sid = info["session_id"]
        for command, keys in (("top", ["q"]), ("vim /tmp/sk-eco-notes.txt", ["Escape", ":q!", "Enter"])):
            total = 0
            r, text, size = await sized(
                c, "send_command", {"session_id": sid, "command": command, "timeout": 5}
            )
            total += size
            assert r["status"] == "waiting_input" and r["question"]["kind"] == "fullscreen", (command, r)
            assert "screen:" in text and str(keys) in r["hint"], r
            k, text, size = await sized(c, "send_keys", {"session_id": sid, "keys": keys})
            total += size
            assert k["result"]["status"] == "completed", (command, k)
            assert "\ufffd" not in text
            assert total <= 2048, (command, total)
        r = await call(c, "send_command", {"session_id": sid, "command": "echo after"})
        assert r["output"] == "after"
        # interrupt_command does not resend output an earlier reply carried.
        r, text, _size = await sized(
            c, "send_command", {"session_id": sid, "command": "seq 1 200; sleep 30", "timeout": 2}
        )
        assert r["status"] == "running" and "\n200" in text
        i, text, size = await sized(c, "interrupt_command", {"session_id": sid})
        assert i["status"] == "interrupted" and "\n100\n" not in text and size < 1500, (i, text)


async def test_continuation_gets_its_own_hint_and_recovers(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        r = await call(c, "send_command", {"host": "bash", "command": "echo 'oops", "timeout": 3})
        assert r["status"] == "waiting_input" and r["question"]["kind"] == "continuation", r
        assert "C-c" in r["hint"] and "corrected" in r["hint"]
        k = await call(c, "send_keys", {"session_id": r["session_id"], "keys": ["C-c"]})
        assert k["result"]["status"] in ("completed", "interrupted"), k
        r = await call(c, "send_command", {"session_id": r["session_id"], "command": "echo 'fixed'"})
        assert r["output"] == "fixed"


async def test_argument_errors_read_code_then_next(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        cases = [
            ("send_command", {"session_id": "x"}, "command"),
            ("send_command", {"host": "bash", "command": "echo", "timeout": 5000}, "timeout"),
            ("get_command", {"session_id": "x", "command_id": "c1", "limit": 0}, "limit"),
            ("send_keys", {"session_id": "x", "keys": "Enter"}, "keys"),
            ("get_command", {"session_id": "x", "command_id": "c1", "wait": 120}, "wait"),
            ("search_output", {"session_id": "x", "pattern": "a", "context": 99}, "context"),
        ]
        for name, args, field in cases:
            text = await call_error(c, name, args)
            first, _, rest = text.partition("\n")
            assert first.startswith("[bad_request] "), text
            assert field in first and rest.startswith("Next: "), text
            assert "pydantic" not in text and "validation error" not in text, text
        # Over 50 s without a progress token: said, with the way on.
        text = await call_error(c, "get_command", {"session_id": "x", "command_id": "c1", "wait": 120})
        assert "progress token" in text and "wait=50" in text
        text = await call_error(c, "no_such_tool", {})
        assert text.startswith("[not_found]") and "\nNext: " in text
        text = await call_error(c, "send_command", {"command": "echo"})
        assert text.startswith("[bad_request]") and "host" in text


async def test_progress_comes_early_and_carries_the_newest_line(shared: Instance) -> None:
    events: list[tuple[float, str | None]] = []
    started = time.monotonic()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((time.monotonic() - started, message))

    async with Client(shared.mcp_params()) as c:
        info = await call(c, "open_session", {"host": "bash"})
        started = time.monotonic()
        res = await c.call_tool(
            "send_command",
            {
                "session_id": info["session_id"],
                "command": "for i in 1 2 3 4; do echo step$i; sleep 1; done",
                "timeout": 60,
            },
            progress_callback=on_progress,
        )
        done = time.monotonic() - started
        assert not res.is_error and res.structured_content is not None
        assert res.structured_content["status"] == "completed"
    # A timeout over 50 s was allowed: the call had a progress token.
    assert len(events) >= 2, events
    assert all(t < done for t, _ in events)
    assert events[0][0] < events[-1][0]
    assert any(m and "step" in m for _, m in events), events
    assert all(m and m.startswith("c") for _, m in events), events


async def test_waiting_input_during_connect_shows_everywhere(
    instance: Instance, sshd: SshServer, tmp_path: Path
) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.touch()
    entry = sshd.connection("bash")
    entry["ssh_options"] = {
        **entry["ssh_options"],  # type: ignore[dict-item]
        "UserKnownHostsFile": str(known_hosts),
        "StrictHostKeyChecking": "ask",
    }
    instance.write_config({**instance.connections, "fresh": entry})
    async with Client(instance.mcp_params()) as c:
        info = await call(c, "open_session", {"host": "fresh"})
        assert info["state"] == "waiting_input" and info["question"]["kind"] == "host_key"
        assert "fingerprint" in info["hint"]
        listing = await call(c, "list_sessions")
        (s,) = listing["sessions"]
        assert s["state"] == "waiting_input" and s["question"]["kind"] == "host_key", s
        code, body = instance.curl("/v1/sessions")
        assert code == 200 and body["sessions"][0]["state"] == "waiting_input"
        assert body["sessions"][0]["question"]["kind"] == "host_key"
        out = instance.cli("ls")
        assert "waiting_input" in out.stdout and "asks (host_key)" in out.stdout, out.stdout
        # The open_session reply is for the agent: no `watch: tmux … attach` line for people.
        res = await c.call_tool("open_session", {"host": "bash"})
        text = "".join(getattr(x, "text", "") for x in res.content)
        assert "watch:" not in text and "attach" not in text


async def test_host_in_place_of_session_id(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        first = await call(c, "send_command", {"host": "dash", "command": "cd /tmp && echo one"})
        sid = first["session_id"]
        again = await call(c, "send_command", {"host": "dash", "command": "pwd"})
        assert again["session_id"] == sid and again["output"] == "/tmp"  # the idle session, reused
        busy = await call(
            c, "send_command", {"host": "dash", "command": "sleep 5; echo built", "timeout": 0.5}
        )
        assert busy["status"] == "running"
        other = await call(c, "send_command", {"host": "dash", "command": "echo check"})
        assert other["session_id"] != sid and other["output"] == "check"
        f = await call(c, "exec_command", {"host": "dash", "command": "echo side"})
        assert f["stdout"] == "side\n"
        r = await call(c, "read_remote_file", {"host": "dash", "remote_path": "/etc/hostname"})
        assert r["size"] > 0
        done = await call(c, "get_command", {"session_id": sid, "command_id": busy["command_id"], "wait": 30})
        assert done["output"] == "built"


async def test_reconnect_says_the_shell_state_is_new(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        r = await call(c, "send_command", {"host": "bash", "command": "cd /tmp"})
        sid = r["session_id"]
        await c.call_tool("send_command", {"session_id": sid, "command": "kill -9 $PPID", "timeout": 5})
        text = await call_error(c, "send_command", {"session_id": sid, "command": "pwd"})
        assert text.startswith("[session_disconnected]") and "reconnect_session" in text
        info = await call(c, "reconnect_session", {"session_id": sid})
        assert info["state"] == "ready"
        assert "new remote shell" in info["hint"] and "working directory" in info["hint"]
