"""A command's reply is built from the values that are set: every field that may be None must
default to None, so that leaving a None out gives the same reply."""

from __future__ import annotations

import typing

from sshkeep.common.models.sessions import CommandResult


def test_every_optional_field_of_a_command_result_defaults_to_none() -> None:
    fields = CommandResult.model_fields
    optional = [n for n, i in fields.items() if type(None) in typing.get_args(i.annotation)]
    assert "exit_code" in optional and "person_commands" in optional
    for name in optional:
        info = fields[name]
        assert info.default is None and info.default_factory is None, name
