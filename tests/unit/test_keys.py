"""sshkeep.common.terminal.keys: key names versus literal text, and the tmux command line that sends them."""

from __future__ import annotations

import shlex

import pytest

from sshkeep.common.terminal.keys import is_key_name, keys_command


@pytest.mark.parametrize(
    "item",
    ["Enter", "Tab", "BTab", "Escape", "BSpace", "Space", "Up", "Down", "Left", "Right", "Home", "End",
     "PageUp", "PgDn", "NPage", "DC", "IC", "F1", "F5", "F12", "KP0", "KPEnter",
     "C-c", "C-d", "C-z", "C-[", "M-x", "M-.", "S-Up", "C-Left", "C-M-x", "M-Enter", "^C", "^["],
)  # fmt: skip
def test_key_names(item: str) -> None:
    assert is_key_name(item)


@pytest.mark.parametrize(
    "item",
    ["y", "yes", "q", ":q!", "ls -la", "enter", "ENTER", "Enter ", " Enter", "C-", "C-cc", "F13", "F0",
     "Ctrl-C", "^", "^CC", "hello world", "C-c; rm -rf /", "Up\n", "-l", "--", "ünïcode", "'", ""],
)  # fmt: skip
def test_literal_text(item: str) -> None:
    assert not is_key_name(item)


def test_command_shape() -> None:
    line = keys_command("%3", ["ls -la", "Enter", "", "C-c"])
    assert line.split(" ; ") == [
        "send-keys -t %3 -l -- 'ls -la'",
        "send-keys -t %3 'Enter'",
        "send-keys -t %3 'C-c'",
    ]
    assert keys_command("%3", ["", ""]) == ""


@pytest.mark.parametrize("text", ["it's", "a ; b", "a;", "\\;", "#{pane_id}", "$HOME", "~", '"q"', "-t %0"])
def test_literal_text_is_one_quoted_word(text: str) -> None:
    line = keys_command("%12", [text])
    prefix = "send-keys -t %12 -l -- "
    assert line.startswith(prefix)
    # tmux's parser and sh agree on single quotes: one word, nothing expanded.
    assert shlex.split(line[len(prefix) :]) == [text]
