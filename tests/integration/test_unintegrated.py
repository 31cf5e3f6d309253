"""A login shell that is not sh-like (here the Python REPL, like a router CLI) still works, labelled."""

from __future__ import annotations

from sshkeep.common.models.sessions import OpenSessionRequest, SendCommandRequest
from tests.instance import Instance
from tests.sshd import SshServer


async def test_non_sh_shell_falls_back_to_quiet_time(instance: Instance, sshd: SshServer) -> None:
    instance.write_config({**instance.connections, "repl": dict(sshd.connection("python"))})
    async with instance.client() as c:
        info = await c.open_session(OpenSessionRequest(host="repl", timeout=30))
        assert info.state == "ready", info
        assert info.shell == "none" and not info.integrated
        assert info.hint and "not sh-compatible" in info.hint
        res = await c.send_command(info.session_id, SendCommandRequest(command="print(6 * 7)"))
        assert res.status == "completed"
        assert res.exit_code is None
        assert res.output == "42"
        assert res.hint and "exit codes are unknown" in res.hint
