"""The HTTP API end to end: open a session on each shell, run commands, exact results."""

from __future__ import annotations

import pytest

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
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


@pytest.mark.parametrize("shell", SHELLS)
async def test_long_command_goes_through_whole(instance: Instance, shell: str) -> None:
    """A 6 KB command line (over the tty's 4 KB and ash's 1 KB line limits) runs exactly."""
    payload = "".join(f"{i:05d}'\"$`\\ " for i in range(600))  # quotes, $, backticks, backslashes
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        quoted = "'" + payload.replace("'", "'\\''") + "'"
        r = await c.send_command(
            sid, SendCommandRequest(command=f"printf '%s\\n' {quoted} | wc -c; echo done")
        )
        assert (r.status, r.exit_code) == ("completed", 0), r
        assert r.output.split() == [str(len(payload.encode()) + 1), "done"]
