"""The HTTP API end to end: open a session on each shell, run commands, exact results."""

from __future__ import annotations

import pytest

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest, SendKeysRequest
from tests.instance import Instance
from tests.support import SHELLS


@pytest.mark.parametrize("shell", SHELLS)
async def test_commands_on_every_shell(instance: Instance, shell: str) -> None:
    async with instance.client() as c:
        info = await c.open_session(OpenSessionRequest(host=shell))
        assert info.state == "ready", info
        assert info.shell == shell
        sid = info.session_id

        async def run(cmd: str) -> tuple[str, int | None, str]:
            r = await c.send_command(sid, SendCommandRequest(command=cmd))
            return r.status, r.exit_code, r.output

        assert await run("echo X") == ("completed", 0, "X")
        assert await run("false") == ("completed", 1, "")
        assert await run("(exit 7)") == ("completed", 7, "")
        assert await run("cd /tmp && export SK_VAR=kept") == ("completed", 0, "")
        assert await run('pwd; echo "$SK_VAR"') == ("completed", 0, "/tmp\nkept")
        assert await run("sleep 1.2; echo slept") == ("completed", 0, "slept")
        assert await run("echo one\necho two") == ("completed", 0, "one\ntwo")


LONG_PAYLOAD = "".join(f"{i:05d}'\"$`\\ " for i in range(600))  # quotes, $, backticks, backslashes


@pytest.mark.parametrize("shell", SHELLS)
async def test_long_command_goes_through_whole(instance: Instance, shell: str) -> None:
    """A 6 KB command line (over the tty's 4 KB and ash's 1 KB line limits) runs exactly."""
    payload = LONG_PAYLOAD
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        quoted = "'" + payload.replace("'", "'\\''") + "'"
        r = await c.send_command(
            sid, SendCommandRequest(command=f"printf '%s\\n' {quoted} | wc -c; echo done")
        )
        assert (r.status, r.exit_code) == ("completed", 0), r
        assert r.output.split() == [str(len(payload.encode()) + 1), "done"]


async def test_typing_waits_for_the_line_editor(instance: Instance) -> None:
    """A prompt hook of the user's that runs after sshkeep's end marker (slow, like a git prompt)
    keeps the terminal in cooked mode a while: what is typed then must still go whole to readline,
    and keys typed at that prompt make an exact record."""
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        hook = await c.send_command(sid, SendCommandRequest(command='PROMPT_COMMAND+=";sleep 0.5"'))
        assert hook.exit_code == 0, hook
        quoted = "'" + LONG_PAYLOAD.replace("'", "'\\''") + "'"
        r = await c.send_command(
            sid, SendCommandRequest(command=f"printf '%s\\n' {quoted} | wc -c; echo done")
        )
        assert (r.status, r.exit_code) == ("completed", 0), r
        assert r.output.split() == [str(len(LONG_PAYLOAD.encode()) + 1), "done"]
        keyed = await c.send_keys(sid, SendKeysRequest(keys=["echo keys-$((6*7))", "Enter"]))
        assert keyed.result is not None, keyed
        assert (keyed.result.command, keyed.result.output) == ("echo keys-$((6*7))", "keys-42")
