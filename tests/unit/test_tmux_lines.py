"""How the tmux control client counts the commands of one line (tmux's own quoting rules)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sshkeep.common.terminal.commandline import typing_keys
from sshkeep.common.tmux import quote_controls
from sshkeep.daemon.sessions.tmux import count_commands


def test_count_commands_follows_tmux_quoting() -> None:
    assert count_commands("list-sessions") == 1
    assert count_commands("send-keys -t %1 -l -- 'a' ; send-keys -t %1 Enter") == 2
    assert count_commands("display-message -p a;display-message -p b") == 2
    assert count_commands("display-message -p 'x ; y' ; display-message -p \"c;d\"") == 2
    assert count_commands("display-message -p 'it'\"'\"'s; fine'") == 1
    assert count_commands("display-message -p e\\;f") == 1
    assert count_commands("list-sessions ;") == 1


def _reference_count(line: str) -> int:
    """tmux's rule, character by character: `;` outside quotes and escapes separates commands."""
    count, quote_char, escaped = 1, "", False
    for ch in line.rstrip().rstrip(";"):
        if escaped:
            escaped = False
        elif quote_char:
            if ch == quote_char:
                quote_char = ""
            elif ch == "\\" and quote_char == '"':
                escaped = True
        elif ch == "\\":
            escaped = True
        elif ch in "'\"":
            quote_char = ch
        elif ch == ";":
            count += 1
    return count


@given(st.lists(st.sampled_from(["a", " ", ";", "'", '"', "\\", "x;y", "\t", "\n", "é"]), max_size=16))
def test_count_commands_agrees_with_a_character_by_character_reading(parts: list[str]) -> None:
    line = "".join(parts)
    assert count_commands(line) == _reference_count(line)


def test_control_characters_are_one_double_quoted_word_of_octal_escapes() -> None:
    assert quote_controls("\x05\x15") == '"\\005\\025"'
    assert quote_controls("\r") == '"\\015"' and quote_controls("") == ""
    with pytest.raises(ValueError, match="only control characters"):
        quote_controls("\x05a")


def test_a_typed_command_is_one_command_of_its_line() -> None:
    keys = typing_keys("%3", "bash", "echo 'a;b' \"c;d\" ; e")
    assert keys == 'send-keys -t %3 -l -- "\\005\\025"\'echo \'"\'"\'a;b\'"\'"\' "c;d" ; e\'"\\015"'
    assert count_commands(keys) == 1 and count_commands(f"set-option -p @x 1 ; {keys}") == 2
    assert typing_keys("%3", None, "x") == "send-keys -t %3 -l -- 'x'\"\\015\""
