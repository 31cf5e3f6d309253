"""sshkeep.common.terminal.lastwords and the disconnect hints: telling ssh's closing words apart."""

from __future__ import annotations

import pytest

from sshkeep.common.terminal.lastwords import closing_start, idle_logout
from sshkeep.daemon.sessions.replies import IDLE_LOGOUT_HINT, disconnect_hint, reconnect_hint


@pytest.mark.parametrize(
    "tail",
    [
        b"Connection to 10.0.0.5 closed by remote host.\r\nConnection to 10.0.0.5 closed.\r\n",
        b"Timeout, server 10.0.0.5 not responding.\r\n",
        b"client_loop: send disconnect: Broken pipe\r\n",
        b"\x07timed out waiting for input: auto-logout\r\nConnection to web closed.\r\n",
        b"\r\nzsh: timeout\r\nConnection to web closed.\r\n",
        b"Read from remote host web: Connection reset by peer\r\n",
    ],
)
def test_closing_lines_start_where_ssh_or_the_shell_begins_to_say_goodbye(tail: bytes) -> None:
    data = b"started\r\nbuilding\r\n$ " + tail
    at = closing_start(data)
    assert at is not None and data[at:] == tail.lstrip(b"\r\n\x07")


def test_plain_output_has_no_closing_lines() -> None:
    assert closing_start(b"started\r\n$ echo zsh: timeouts are fine\r\n") is None


def test_idle_logout_gets_the_tmout_hint() -> None:
    assert idle_logout("timed out waiting for input: auto-logout\nConnection to web closed.")
    assert idle_logout("zsh: timeout")
    assert disconnect_hint("zsh: timeout") == IDLE_LOGOUT_HINT
    assert "TMOUT" in IDLE_LOGOUT_HINT and "reconnect_session" in IDLE_LOGOUT_HINT
    other = disconnect_hint("Connection to web closed by remote host.")
    assert "reconnect_session" in other and "TMOUT" not in other


def test_the_reconnect_hint_says_where_the_new_shell_is() -> None:
    assert "login directory" in reconnect_hint(None, "/home/u")
    back = reconnect_hint("/srv/app", "/srv/app")
    assert "back in the old one's working directory /srv/app" in back and "new remote shell" in back
    lost = reconnect_hint("/srv/gone", "/home/u")
    assert "could not return" in lost and "/srv/gone" in lost and "/home/u" in lost
