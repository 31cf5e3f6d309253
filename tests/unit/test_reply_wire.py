"""The shim passes a reply on as the daemon's JSON, unless the reply was changed since."""

from __future__ import annotations

from sshkeep.common.models.sessions import CommandResult
from sshkeep.shim.tools_base import Tools


def test_a_reply_passes_on_its_json_until_a_field_is_assigned() -> None:
    payload = {"session_id": "s-1", "command_id": "c1", "status": "completed", "output": "x", "extra": 1}
    res = CommandResult.model_validate(payload)
    res.wire = dict(payload)
    out = Tools.result(res, "t").structured_content
    assert out == payload  # passed on as it came (an unknown field included: no dump happened)
    assert res.wire == payload  # and the model's copy is left as it was
    res.hint = "changed after"
    assert res.wire is None
    out = Tools.result(res, "t").structured_content
    assert out is not None and out["hint"] == "changed after" and "extra" not in out


def test_large_text_leaves_the_passed_on_json_but_not_the_model() -> None:
    payload = {"session_id": "s-1", "command_id": "c1", "status": "completed", "screen": "s" * 10}
    res = CommandResult.model_validate(payload)
    res.wire = dict(payload)
    out = Tools.result(res, "t").structured_content
    assert out is not None and out["screen"] == "" and out["in_text"] == ["screen"]
    assert res.wire == payload
