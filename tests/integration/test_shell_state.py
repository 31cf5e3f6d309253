"""The shell's own state stays the user's and sshkeep stays in step with it, per shell, through the
MCP client: a command that replaces the shell (`exec bash`), Ctrl-C at an idle prompt, the user's
traps, and the shell's history."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.instance import Instance
from tests.support import SHELLS, call, mcp_open_session

# What each login shell replaces itself with: the same kind of shell, and one of another kind.
EXEC_TARGETS = {
    # -f: this account has no ~/.zshrc, and zsh would start its new-user menu.
    "bash": ["exec bash", "exec zsh -f"],
    "zsh": ["exec zsh", "exec sh"],
    "dash": ["exec sh", "exec bash"],
    "ash": ["exec busybox ash", "exec dash"],
}
# How the new shell names itself in the X marker.
KIND = {"bash": "bash", "zsh": "zsh", "zsh -f": "zsh", "sh": "dash", "dash": "dash", "busybox ash": "ash"}


async def run(c: Client, sid: str, command: str, timeout: float = 20) -> dict[str, Any]:
    return await call(c, "send_command", {"session_id": sid, "command": command, "timeout": timeout})


async def session_of(c: Client, sid: str) -> dict[str, Any]:
    """The session's entry in list_sessions (MCP has no tool for one session)."""
    listing = await call(c, "list_sessions")
    return next(x for x in listing["sessions"] if x["session_id"] == sid)


async def exact(c: Client, sid: str, command: str) -> str:
    r = await run(c, sid, command)
    assert (r["status"], r.get("exit_code")) == ("completed", 0), (command, r)
    return str(r.get("output", ""))


@pytest.mark.parametrize("shell", SHELLS)
async def test_exec_replaces_the_shell_and_the_new_one_is_integrated(shared: Instance, shell: str) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c, shell)
        await exact(c, sid, "echo before")
        for target in EXEC_TARGETS[shell]:
            r = await run(c, sid, target)
            assert (r["status"], r.get("exit_code")) == ("completed", 0), r
            assert "replaced the shell" in str(r.get("hint")), str(r)
            # What the new shell printed at its start (ash's banner) is output; its prompt and the
            # setup typed into it are not.
            out = str(r.get("output", ""))
            assert "__sk_" not in out and not out.rstrip().endswith(("$", "#", "%")), out
            info = await session_of(c, sid)
            assert (info["state"], info["integrated"]) == ("ready", True), info
            assert info["shell"] == KIND[target.removeprefix("exec ")], info
            # Exact again: output, exit codes and `$?` are the new shell's own.
            assert await exact(c, sid, "echo ok") == "ok"
            r = await run(c, sid, "(exit 7)")
            assert (r["status"], r.get("exit_code")) == ("completed", 7), r
            assert await exact(c, sid, "echo $?") == "7"
            assert await exact(c, sid, "printf 'a\\tb\\n'") == "a\tb"
        await call(c, "close_session", {"session_id": sid})


async def test_exec_of_a_shell_that_cannot_be_set_up_says_so(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c, "bash")
        r = await run(c, sid, "exec python3 -q", timeout=30)
        assert (r["status"], r.get("exit_code")) == ("completed", None), r
        assert "[not_integrated]" in r["hint"], r
        info = await session_of(c, sid)
        assert info["integrated"] is False and info["shell"] == "none", info
        assert "[not_integrated]" in info["hint"], info
        # The terminal still takes input, judged by quiet output.
        r = await run(c, sid, "print(6 * 7)")
        assert r["status"] == "completed" and "42" in r["output"], r
        assert "[not_integrated]" in r["hint"], r
        # Another terminal on the same connection is an integrated shell again.
        t = await call(c, "open_terminal", {"session_id": sid})
        r = await call(
            c, "send_command", {"session_id": sid, "terminal": t["terminal"], "command": "echo ok"}
        )
        assert (r["status"], r.get("exit_code"), r["output"]) == ("completed", 0, "ok"), r
        await call(c, "close_session", {"session_id": sid})


@pytest.mark.parametrize("shell", SHELLS)
async def test_interrupt_with_nothing_running(shared: Instance, shell: str) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c, shell)
        last = (await run(c, sid, "echo one"))["command_id"]
        for i in range(2):
            r = await call(c, "interrupt_command", {"session_id": sid})
            assert r["status"] == "completed" and r["command_id"] == last, r
            assert r.get("question") is None and r.get("output", "") == "", r
            assert r["note"].startswith("Nothing was running"), r
            # The prompt cycle the Ctrl-C caused is no command's output.
            r = await run(c, sid, f"echo ok{i}")
            assert (r["status"], r["exit_code"], r["output"]) == ("completed", 0, f"ok{i}"), r
            last = r["command_id"]
        await call(c, "close_session", {"session_id": sid})


@pytest.mark.parametrize("shell", SHELLS)
async def test_user_traps_never_reach_later_output(shared: Instance, shell: str) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c, shell)
        if shell in ("bash", "zsh"):
            await run(c, sid, "trap 'echo hi' DEBUG")
            # The trap fires for the user's own command, as without sshkeep, never for its hooks.
            for _ in range(2):
                assert await exact(c, sid, "echo ok") == "hi\nok"
            await run(c, sid, "(exit 3)")
            assert await exact(c, sid, "echo $?") == "hi\n3"
            await run(c, sid, "trap - DEBUG")
            assert await exact(c, sid, "echo ok") == "ok"
        # dash and ash have no DEBUG trap; other traps are the user's in every shell.
        assert await exact(c, sid, "(trap 'echo bye' EXIT; echo in)") == "in\nbye"
        await exact(c, sid, "trap 'echo got-usr1' USR1")
        assert await exact(c, sid, "kill -USR1 $$; echo after") == "got-usr1\nafter"
        await exact(c, sid, "trap - USR1")
        assert await exact(c, sid, "echo ok") == "ok"
        await call(c, "close_session", {"session_id": sid})


HISTORY = {"bash": "history", "zsh": "fc -ln 1", "dash": ":", "ash": "history"}


@pytest.mark.parametrize("shell", SHELLS)
async def test_no_history_holds_the_nonce(shared: Instance, shell: str) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c, shell)
        nonce = shared.tmux("show-options", "-v", "-t", f"={sid}:", "@sshkeep_nonce").stdout.strip()
        assert len(nonce) >= 8
        await exact(c, sid, "echo mine")
        # And after the shell replaced itself, the setup typed into the new one.
        await run(c, sid, EXEC_TARGETS[shell][0])
        await exact(c, sid, "echo mine-again")
        # Everything any history holds, to a file: a reply would cut a long history short.
        dump = f"/tmp/sk-history-{sid}"
        files = "~/.bash_history ~/.zsh_history ~/.ash_history"
        await run(c, sid, f"{{ {HISTORY[shell]}; cat {files}; }} > {dump} 2>/dev/null")
        text = (await call(c, "read_remote_file", {"session_id": sid, "remote_path": dump}))["content"]
        await exact(c, sid, f"rm -f {dump}")
        assert nonce not in text
        if shell in ("bash", "ash"):
            assert "echo mine-again" in text, text[-2000:]  # the user's own lines are still recorded
        await call(c, "close_session", {"session_id": sid})


@pytest.mark.parametrize("shell", SHELLS)
async def test_exec_typed_as_keys_is_followed_too(shared: Instance, shell: str) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c, shell)
        r = await call(
            c, "send_keys", {"session_id": sid, "keys": [EXEC_TARGETS[shell][0], "Enter"], "wait": 10}
        )
        assert r["result"]["status"] == "completed" and r["result"]["source"] == "keys", r
        assert await exact(c, sid, "echo ok") == "ok"
        await call(c, "close_session", {"session_id": sid})


async def test_setup_is_never_typed_into_a_question(shared: Instance) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c, "bash")
        # Like `exec su -`: the new program asks first, and only then a shell starts.
        r = await run(c, sid, """exec sh -c 'printf "Password: "; read -r x; echo "got $x"; exec bash'""")
        assert r["status"] == "waiting_input" and r["question"]["kind"] == "password", r
        k = await call(c, "send_keys", {"session_id": sid, "keys": ["s3", "Enter"], "wait": 10})
        assert k["result"]["status"] == "completed", k
        assert "got s3" in str(k["result"].get("output", "")) or "got s3" in r.get("output", ""), (r, k)
        assert await exact(c, sid, "echo ok") == "ok"
        await call(c, "close_session", {"session_id": sid})


@pytest.mark.parametrize("shell", SHELLS)
async def test_exec_typed_by_a_person_is_caught_up_with(shared: Instance, shell: str) -> None:
    async with Client(shared.mcp_params()) as c:
        sid = await mcp_open_session(c, shell)
        await exact(c, sid, "echo before")
        # A person types it in the attached pane: dash and ash mark no start of a typed line.
        shared.tmux("send-keys", "-t", f"={sid}:", "-l", EXEC_TARGETS[shell][0])
        shared.tmux("send-keys", "-t", f"={sid}:", "Enter")
        r = await run(c, sid, "echo first")
        if shell in ("dash", "ash"):
            # Typed into the new shell before anyone knew: it ran there, unmarked.
            assert (r["status"], r.get("exit_code")) == ("completed", None), r
            assert "first" in r["output"] and "run it again" in r["hint"], r
        elif r.get("exit_code") is None:
            # bash and zsh mark the person's line, unless the agent's command was typed before
            # that mark was read: then it ran in the new shell too, unmarked, and says so.
            assert r["status"] == "completed" and "run it again" in r["hint"], r
        else:
            # The mark was read first: the agent's command followed the person's, exact.
            assert (r["status"], r.get("exit_code"), r.get("output")) == ("completed", 0, "first"), str(r)
        assert await exact(c, sid, "echo ok") == "ok"
        await call(c, "close_session", {"session_id": sid})
