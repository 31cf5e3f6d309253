"""Exactness per shell: typed bytes reach the shell as data, output is rendered cell-exact, shell
state (`$?`, history) is the user's, and each reply holds only its own command's output."""

from __future__ import annotations

import base64
import shlex

import pytest
from mcp import Client

from sshkeep.common.client import ApiClient
from sshkeep.common.models.files import WriteFileRequest
from sshkeep.common.models.sessions import (
    CommandResult,
    OpenSessionRequest,
    SendCommandRequest,
    SendKeysRequest,
)
from tests.instance import Instance
from tests.support import SHELLS

EVERY_BYTE = "".join(chr(i) for i in range(1, 128))


async def run(c: ApiClient, sid: str, command: str, timeout: float = 15) -> CommandResult:
    return await c.send_command(sid, SendCommandRequest(command=command, timeout=timeout))


async def done(c: ApiClient, sid: str, command: str) -> str:
    r = await run(c, sid, command)
    assert (r.status, r.exit_code) == ("completed", 0), (command, r)
    return r.output


@pytest.mark.parametrize("shell", SHELLS)
async def test_typed_bytes_reach_the_shell_as_data(shared: Instance, shell: str) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        # TAB is not completion, control bytes are not editing keys or signals.
        assert await done(c, sid, "printf 'x\t\ty\\n'") == "x\t\ty"
        assert await done(c, sid, "printf '%s\\n' 'a\x01b' | od -An -tx1") == " 61 01 62 0a"
        # Every byte 0x01-0x7f in one quoted argument arrives unchanged (hexdump of what printf got).
        out = await done(c, sid, "printf '%s' " + shlex.quote(EVERY_BYTE) + " | od -An -v -tx1")
        assert out.split() == [f"{i:02x}" for i in range(1, 128)]
        assert await done(c, sid, "echo next") == "next"  # and the session is still in step
        # A heredoc writing a Makefile keeps its tabs.
        heredoc = (
            "cat > /tmp/sk-mk-$$ <<'EOF'\nall:\n\techo built\nEOF\nod -c /tmp/sk-mk-$$; rm -f /tmp/sk-mk-$$"
        )
        out = await done(c, sid, heredoc)
        assert "\\t   e   c   h   o" in out, out
        # History expansion is off: `!` is a character.
        assert await done(c, sid, 'echo "x!zzqq" !!') == "x!zzqq !!"
        # A line starting with `~.` is text, not ssh's disconnect escape.
        assert await done(c, sid, "echo a\n'~.' 2>/dev/null; echo b") == "a\nb"
        await c.send_keys(sid, SendKeysRequest(keys=["Enter", "~.", "C-u"]))
        assert await done(c, sid, "echo still-connected") == "still-connected"
        await c.close_session(sid)


@pytest.mark.parametrize("shell", SHELLS)
async def test_exit_status_of_the_previous_command_is_kept(shared: Instance, shell: str) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        r = await run(c, sid, "(exit 12)")
        assert r.exit_code == 12
        r = await run(c, sid, "echo $?")
        assert (r.output, r.exit_code) == ("12", 0)
        await run(c, sid, "(exit 3)")
        r = await run(c, sid, '[ $? -eq 3 ] && echo three; printf "\\t$?\\n"')
        assert r.output == "three\n\t0"
        await c.close_session(sid)


@pytest.mark.parametrize("shell", SHELLS)
async def test_rendering_is_cell_exact(shared: Instance, shell: str) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        assert await done(c, sid, "printf '$ '") == "$ "
        assert await done(c, sid, "printf 'a  \\nb \\n'") == "a  \nb "
        assert await done(c, sid, "printf 'ab\\r%s\\n' '漢'") == "漢"
        assert await done(c, sid, "printf '\\0337saved\\0338restored\\n'") == "restored"
        assert await done(c, sid, "printf 'ab\\033[scd\\033[uXY\\n'") == "abXY"
        await c.close_session(sid)


@pytest.mark.parametrize("shell", SHELLS)
async def test_terminal_query_answers_never_reach_the_next_command(shared: Instance, shell: str) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        for query in ("\\033[c", "\\033[>c", "\\033[6n", "\\033[>c\\033[c\\033[6n"):
            assert await done(c, sid, f"printf '{query}'; sleep 0.3") == ""
            assert await done(c, sid, "echo ok") == "ok", query
        await c.close_session(sid)


@pytest.mark.parametrize("shell", SHELLS)
async def test_half_typed_line_is_cleared_before_a_command(shared: Instance, shell: str) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        await c.send_keys(sid, SendKeysRequest(keys=["HALF-TYPED "]))
        assert await done(c, sid, "echo ok") == "ok"
        await c.close_session(sid)


@pytest.mark.parametrize("shell", SHELLS)
async def test_output_cannot_forge_a_marker(shared: Instance, shell: str) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        await done(c, sid, "echo one")
        # Print the session's own raw log (it holds every marker so far, nonce included).
        log = shared.paths.logs_dir / f"{sid}.log"
        data = log.read_bytes()
        tmp = f"/tmp/sk-replay-{sid}"
        r = await c.write_remote_file(sid, _write(tmp, data))
        assert r.bytes_written == len(data)
        r = await run(c, sid, f"cat {tmp}; sleep 0.5; echo real-end; rm -f {tmp}")
        assert r.status == "completed" and r.exit_code == 0
        assert r.output.endswith("real-end"), r.output
        assert await done(c, sid, "echo two") == "two"
        await c.close_session(sid)


def _write(path: str, data: bytes) -> WriteFileRequest:
    return WriteFileRequest(remote_path=path, content=base64.b64encode(data).decode(), encoding="base64")


async def test_bash_debug_trap_does_not_leak(shared: Instance) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        await run(c, sid, "trap 'echo hi' DEBUG")
        # The trap fires for the user's own command (as `bash -c` shows), never for sshkeep's hook.
        assert await done(c, sid, "echo ok") == "hi\nok"
        assert await done(c, sid, "echo ok") == "hi\nok"
        await run(c, sid, "trap - DEBUG")
        assert await done(c, sid, "echo ok") == "ok"
        await c.close_session(sid)


@pytest.mark.parametrize("shell", SHELLS)
async def test_setup_is_not_in_history(shared: Instance, shell: str) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        nonce = shared.tmux("show-options", "-v", "-t", f"={sid}:", "@sshkeep_nonce").stdout.strip()
        assert len(nonce) >= 8
        listing = {"bash": "history", "zsh": "fc -ln 1", "dash": ":", "ash": "history"}[shell]
        out = (
            await run(c, sid, f"{listing}; cat ~/.bash_history ~/.zsh_history ~/.ash_history 2>/dev/null")
        ).output
        assert nonce not in out
        await c.close_session(sid)


async def test_typed_input_through_mcp(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        for shell in SHELLS:
            info = await c.call_tool("open_session", {"host": shell})
            assert info.structured_content is not None
            sid = info.structured_content["session_id"]
            res = await c.call_tool(
                "send_command", {"session_id": sid, "command": "printf 'a\tb\x01c\\n' | od -An -c; echo $?"}
            )
            assert res.structured_content is not None
            assert res.structured_content["output"].split() == ["a", "\\t", "b", "001", "c", "\\n", "0"]
            await c.call_tool("close_session", {"session_id": sid})


@pytest.mark.parametrize("shell", SHELLS)
async def test_keys_then_command_each_reply_holds_its_own_output(shared: Instance, shell: str) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        for i in range(3):
            await c.send_keys(sid, SendKeysRequest(keys=["Enter"]))
            assert await done(c, sid, f"echo A{i}") == f"A{i}"
            await c.send_keys(sid, SendKeysRequest(keys=["C-c"]))
            assert await done(c, sid, f"echo B{i}") == f"B{i}"
            await c.send_keys(sid, SendKeysRequest(keys=[f"echo typed{i}", "Enter"]))
            assert await done(c, sid, f"echo mine{i}") == f"mine{i}"
        # Each keys-typed line is a record of its own: its text without the prompt, its own output.
        typed = [x for x in (await c.list_commands(sid)).commands if x.source == "keys"]
        assert [x.command for x in typed] == [f"echo typed{i}" for i in range(3)], typed
        for i, x in enumerate(typed):
            assert (await c.get_command(sid, x.command_id)).output == f"typed{i}"
        await c.close_session(sid)


async def test_password_text_followed_by_output_is_not_a_question(shared: Instance) -> None:
    async with shared.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        r = await run(c, sid, "printf 'Password: '; sleep 0.7; echo more")
        assert (r.status, r.exit_code, r.output) == ("completed", 0, "Password: more")
        await c.close_session(sid)
