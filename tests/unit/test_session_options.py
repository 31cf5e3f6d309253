"""The @sshkeep_* tmux options and pane fields: list formats and their parsers agree."""

from __future__ import annotations

from sshkeep.common.terminal.commandline import NO_SHELL
from sshkeep.daemon.sessions.options import (
    PANE_FORMAT,
    SEP,
    SESSION_PANE_FORMAT,
    PaneState,
    SessionOptions,
    parse_pane,
    parse_session_pane,
    set_line,
)


def test_formats_name_every_field_in_order() -> None:
    expected = (
        "'#{pane_id}\t#{pane_dead}\t#{pane_dead_status}\t#{pane_dead_signal}\t#{pane_dead_time}\t#{pane_pid}"
        "\t#{pane_pipe}'"
    )
    assert expected == PANE_FORMAT
    assert SESSION_PANE_FORMAT.endswith("#{@sshkeep_argv}\t#{@sshkeep_dropped}'")
    assert SessionOptions.NAMES == ("id", "nonce", "target", "conn", "created", "shell", "argv", "dropped")


def test_session_pane_round_trip() -> None:
    opts = SessionOptions(
        id="web-1a2b3c", nonce="ab" * 8, target="web", conn="web", created=1700000000.25,
        shell=NO_SHELL, argv=["ssh", "-o", "LocalCommand=printf 'x'", "--", "h"], dropped=4096,
    )  # fmt: skip
    words = opts.set_args(opts.id)
    values = [words[i + 5] for i in range(0, len(words), 6)]
    line = SEP.join(["%3", "1", "255", "", "1700000100", "42", "0", *values])
    row = parse_session_pane(line)
    assert row is not None
    pane, back = row
    assert back == opts
    assert pane.dead and pane.exit_status == 255 and pane.dead_since() == 1700000100.0
    assert not pane.piped


def test_missing_and_junk_values_get_defaults() -> None:
    row = parse_session_pane(
        SEP.join(["%1", "0", "", "", "", "", "1", "s-1", "", "", "", "junk", "", "{", "x"])
    )
    assert row is not None
    assert row[1] == SessionOptions(id="s-1")
    assert not row[0].dead and row[0].exit_status is None


def test_lines_of_another_shape_are_skipped() -> None:
    assert parse_pane("%1\t0") is None
    assert parse_session_pane(SEP.join(["%1"] * 6)) is None
    assert parse_pane(SEP.join(["%1", "0", "", "", "", "7", "1"])) == PaneState(
        "%1", "0", "", "", "", "7", "1"
    )


def test_set_line_quotes_values_and_unsets_none() -> None:
    line = set_line("s-1", nonce="n1", argv=["ssh", "it's"], shell=None)
    assert line == (
        "set-option -t =s-1: @sshkeep_nonce 'n1' ; "
        """set-option -t =s-1: @sshkeep_argv '["ssh", "it'"'"'s"]' ; """
        "set-option -u -t =s-1: @sshkeep_shell"
    )
