"""The shim passes a reply on as the daemon's JSON, unless the reply was changed since."""

from __future__ import annotations

from sshkeep.common.models.sessions import CommandResult
from sshkeep.shim.tools_base import Tools


def test_a_reply_passes_on_its_json_until_a_field_is_assigned() -> None:
    payload = {"session_id": "s-1", "command_id": "c1", "status": "completed", "output": "x", "extra": 1}
    res = CommandResult.model_validate(payload)
    res.wire = payload
    assert Tools.result(res, "t").structured_content is payload  # passed on as it came
    res.hint = "changed after"
    assert res.wire is None
    out = Tools.result(res, "t").structured_content
    assert out is not None and out["hint"] == "changed after" and "extra" not in out
