"""How the tmux control client counts the commands of one line (tmux's own quoting rules)."""

from __future__ import annotations

from sshkeep.daemon.sessions.tmux import count_commands


def test_count_commands_follows_tmux_quoting() -> None:
    assert count_commands("list-sessions") == 1
    assert count_commands("send-keys -t %1 -l -- 'a' ; send-keys -t %1 Enter") == 2
    assert count_commands("display-message -p a;display-message -p b") == 2
    assert count_commands("display-message -p 'x ; y' ; display-message -p \"c;d\"") == 2
    assert count_commands("display-message -p 'it'\"'\"'s; fine'") == 1
    assert count_commands("display-message -p e\\;f") == 1
    assert count_commands("list-sessions ;") == 1
