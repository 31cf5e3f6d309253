"""Agent economy, pure parts: output search (bounded regex work), full-screen output, per-kind hints,
the ssh -G login, the MCP error format, and the static cost of the tool list."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, Field, ValidationError

from sshkeep.common.client import ApiClient
from sshkeep.common.models.sessions import Question, SearchRequest
from sshkeep.common.paths import resolve_paths
from sshkeep.common.terminal.screenmode import (
    ALTERNATE,
    KEYPAD,
    NORMAL,
    compact_screen,
    drawn,
    strip_screens,
    strip_screens_from,
)
from sshkeep.daemon.sessions import search
from sshkeep.daemon.sessions.login import parse_g
from sshkeep.daemon.sessions.replies import program_of, question_hint, quit_keys, typed_command
from sshkeep.daemon.sessions.session import Session
from sshkeep.daemon.sessions.store import CommandRecord
from sshkeep.shim.mcp_server import CORE_TOOLS, build_server
from sshkeep.shim.tools_base import lean_input, lean_output, validation_text


def _session(tmp_path: Path, data: bytes) -> tuple[Session, CommandRecord]:
    log = tmp_path / "s.log"
    log.write_bytes(data)
    s = Session(
        id="s-1",
        pane_id="%1",
        target="t",
        connection=None,
        nonce="ab" * 8,
        created_at=0.0,
        log_path=log,
        attach="",
    )
    s.scan_pos = s.log_size = len(data)
    rec = CommandRecord("s-1", "c1", 1, "gen", "completed", 0, 0, 0, 0, len(data), 0.0, 1.0)
    s.commands[rec.command_id] = rec
    return s, rec


def test_search_finds_one_line_in_50000_with_context(tmp_path: Path) -> None:
    lines = [str(i) for i in range(1, 50001)]
    lines[31336] = "ERROR: disk quota exceeded"
    s, rec = _session(tmp_path, ("\r\n".join(lines) + "\r\n").encode())
    res = asyncio.run(search.search_output(s, [rec], SearchRequest(pattern="ERROR", context=2)))
    assert res.total_matches == 1 and res.complete
    m = res.matches[0]
    assert (m.command_id, m.line, m.text) == ("c1", 31336, "ERROR: disk quota exceeded")
    assert m.before == ["31335", "31336"] and m.after == ["31338", "31339"]
    assert res.lines_searched == 50000
    # The line number is the get_command offset: the same line in the rendered output.
    page = asyncio.run(s.output_page(rec, rec.out_end or 0, first=False, offset=m.line, limit=1))
    assert page.lines == [m.text]


def test_search_across_chunks_counts_all_and_caps_matches(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(search, "CHUNK_BYTES", 1000)  # many chunk boundaries
    lines = [f"line {i}" + (" hit" if i % 100 == 0 else "") for i in range(5000)]
    s, rec = _session(tmp_path, ("\n".join(lines) + "\n").encode())
    res = asyncio.run(
        search.search_output(s, [rec], SearchRequest(pattern=r"hit$", max_matches=3, context=1))
    )
    assert res.total_matches == 50 and len(res.matches) == 3
    assert [m.line for m in res.matches] == [0, 100, 200]
    assert res.matches[1].before == ["line 99"] and res.matches[1].after == ["line 101"]
    assert "max_matches" in (res.hint or "")


def test_search_with_lookaround_and_ignore_case(tmp_path: Path) -> None:
    s, rec = _session(tmp_path, b"Warning one\nwarning two\nnot a warning\n")
    res = asyncio.run(
        search.search_output(s, [rec], SearchRequest(pattern=r"(?<!a )warning", ignore_case=True))
    )
    assert [m.line for m in res.matches] == [0, 1]


def test_catastrophic_pattern_stops_within_the_budget(tmp_path: Path) -> None:
    s, rec = _session(tmp_path, ("a" * 5000 + "b\n").encode() * 3)
    started = time.monotonic()
    res = asyncio.run(search.search_output(s, [rec], SearchRequest(pattern=r"^(a|a?)+$"), budget=0.5))
    assert not res.complete
    assert "budget" in (res.hint or "")
    assert time.monotonic() - started < 30  # bounded (the budget is 0.5 s; the machine may be slow)


def test_search_refuses_a_bad_pattern(tmp_path: Path) -> None:
    from sshkeep.common.errors import BadRequest

    s, rec = _session(tmp_path, b"x\n")
    with pytest.raises(BadRequest, match="not a valid regular expression"):
        asyncio.run(search.search_output(s, [rec], SearchRequest(pattern="(")))


def test_full_screen_frames_are_not_output() -> None:
    vim = b"before\r\n\x1b[?1049h\x1b[H\x1b[2J~\r\n~\r\n\x1b[?1049lafter\r\n"
    assert drawn(vim)
    assert strip_screens(vim) == b"before\r\nafter\r\n"
    frame = b"\x1b[H\x1b[2Jtop - 10:00\x1b[2;1HTasks: 1\x1b[3;1H%Cpu\x1b[K"
    top = b"top\r\n" + frame * 3 + b"\x1b[50;1H\r\n"
    assert drawn(top)
    assert strip_screens(top) == b"top\r\n"
    first_frame = b"\x1b[?1h\x1b=\x1b[?25l\x1b[H\x1b[Jtop - 10:00\x1b[K\r\nTasks: 1\x1b[K\r\n"
    assert drawn(first_frame)  # keypad mode and a home+erase: a screen program from its first frame
    assert strip_screens(b"$ top\r\n" + first_frame) == b"$ top\r\n"  # still running: all frames
    quit_ = b"$ top\r\n" + first_frame * 2 + b"\x1b[?1l\x1b>\x1b[50;1H\r\nbye\r\n"
    assert strip_screens(quit_) == b"$ top\r\nbye\r\n"
    zle = b"\x1b[?1h\x1b=\x1b[J$ echo a\r\n\x1b[?1l\x1b>a\r\n" * 4  # zsh prompts in replayed output
    assert not drawn(zle) and strip_screens(zle) == zle
    plain = b"\x1b[H\x1b[2J\x1b[3Jls output\r\n"  # `clear; ls`
    assert not drawn(plain)
    assert strip_screens(plain) == plain


def test_compact_screen_folds_repeated_rows() -> None:
    text, more = compact_screen(["hello", *["~"] * 40, "", ""], max_lines=15, max_chars=1000)
    assert text == "hello\n~  [×40]" and more == 0
    text, more = compact_screen([f"row {i}" for i in range(50)], max_lines=15, max_chars=1000)
    assert text.count("\n") == 14 and more == 35


def test_each_question_kind_has_its_own_next_step() -> None:
    def hint(kind: str, command: str = "") -> str:
        return question_hint(Question(kind=kind, text="?"), "web-1", command)

    assert "answer_secret" in hint("password") and "sshkeep answer web-1" in hint("password")
    assert "C-c" in hint("continuation") and "corrected" in hint("continuation")
    assert "['q']" in hint("fullscreen", "top")
    assert "':q!'" in hint("fullscreen", "vim /etc/hosts")
    assert '"y"' in hint("confirm") and '"n"' in hint("confirm")
    assert "fingerprint" in hint("host_key")
    assert len({hint(k) for k in ("password", "continuation", "fullscreen", "confirm", "host_key")}) == 5


def test_program_and_quit_keys() -> None:
    assert program_of("sudo -E vim /etc/hosts") == "vim"
    assert program_of("LESS=-R git log") == "git"
    assert program_of("journalctl -u x | less") == "less"
    assert quit_keys("nano notes.txt") == ["C-x"]
    assert quit_keys("htop") == ["q"]
    assert quit_keys("./my-tui") is None


def test_typed_command_is_text_then_enter() -> None:
    assert typed_command(["ls -la", "Enter"]) == "ls -la"
    assert typed_command(["echo", "Space", "hi", "Enter"]) == "echo hi"
    assert typed_command(["y", "Enter"]) == "y"
    assert typed_command(["C-c"]) is None
    assert typed_command(["Up", "Enter"]) is None
    assert typed_command(["ls"]) is None


def test_login_from_ssh_g() -> None:
    out = "user alice\nhostname 10.0.0.5\nport 2222\nidentityfile ~/.ssh/id\n"
    assert parse_g(out) == "alice@10.0.0.5:2222"
    assert parse_g("user bob\nhostname h\nport 22\n") == "bob@h"
    assert parse_g("nothing\n") is None


class _Args(BaseModel):
    model_config = {"extra": "forbid"}
    session_id: str
    timeout: float = Field(default=10, le=50)


def test_argument_errors_read_code_then_next() -> None:
    with pytest.raises(ValidationError) as exc:
        _Args.model_validate({"timeout": 120, "x": 1})
    text = validation_text("send_command", exc.value, {"required": ["session_id"], "properties": {"a": {}}})
    first, second = text.split("\n")
    assert first.startswith("[bad_request] send_command: ")
    assert "session_id: required" in first and "timeout: must be <= 50" in first and "x: unknown" in first
    assert second.startswith("Next: ") and "pydantic" not in text


def test_lean_schemas_have_no_titles() -> None:
    schema = {
        "title": "Args",
        "type": "object",
        "properties": {
            "limit": {
                "anyOf": [{"type": "integer", "maximum": 5}, {"type": "null"}],
                "default": None,
                "title": "Limit",
            },
        },
    }
    lean = lean_input(schema)
    assert lean == {"type": "object", "properties": {"limit": {"type": "integer", "maximum": 5}}}
    out = lean_output(
        {"title": "R", "properties": {"q": {"anyOf": [{"$ref": "#/$defs/Q"}, {"type": "null"}]}}}
    )
    assert out == {"type": "object", "properties": {"q": {"type": ["object", "null"]}}}


def _tools(tmp_path: Path) -> list[Any]:
    p = resolve_paths({"SSHKEEP_HOME": str(tmp_path), "HOME": str(tmp_path)})
    server = build_server(p, ApiClient(p.socket))
    return list(server._tool_manager.list_tools())


def test_core_tools_cost_at_most_1500_tokens(tmp_path: Path) -> None:
    tools = {t.name: t for t in _tools(tmp_path)}
    assert set(CORE_TOOLS) <= set(tools)
    chars = sum(
        len(name)
        + len(tools[name].description)
        + len(json.dumps(tools[name].parameters, separators=(",", ":")))
        for name in CORE_TOOLS
    )
    assert chars / 4 <= 1500, f"core tools cost {chars / 4:.0f} tokens"


def test_tool_schemas_are_lean_and_every_parameter_described(tmp_path: Path) -> None:
    for t in _tools(tmp_path):
        blob = json.dumps(t.parameters) + json.dumps(t.output_schema)
        assert '"title"' not in blob, t.name
        for name, prop in t.parameters.get("properties", {}).items():
            assert prop.get("description"), f"{t.name}.{name} has no description"
            if prop.get("type") in ("integer", "number"):
                assert "maximum" in prop, f"{t.name}.{name} has no upper bound"
            if prop.get("type") == "string" and "enum" not in prop:
                assert "maxLength" in prop or "pattern" in prop, f"{t.name}.{name} has no length bound"
        assert t.description, t.name
        if t.name in CORE_TOOLS:
            assert len(t.description) < 200, t.name


def test_frames_spanning_chunks_are_not_output() -> None:
    """Output rendered in chunks (the line index, searches) keeps the screen state from one to the
    next: vim's last row in a later chunk than its start is a frame too."""
    vim = b"\x1b[?1049h\x1b[H\x1b[Jrow-1\r\nrow-2\r\nrow-49\x1b[50;1H:q\r\x1b[?1049l\x1b[?25hbye\r\n"
    cut = vim.index(b"row-49")
    head, state = strip_screens_from(vim[:cut], NORMAL)
    assert (head, state) == (b"", ALTERNATE)
    assert strip_screens_from(vim[cut:], state) == (b"\x1b[?25hbye\r\n", NORMAL)
    frame = b"\x1b[H\x1b[Jtop - 10:00\x1b[K\r\nTasks: 1\x1b[K\r\n"
    top = b"\x1b[?1h\x1b=" + frame * 2
    assert strip_screens_from(top, NORMAL) == (b"", KEYPAD)
    assert strip_screens_from(b"Tasks: 2\x1b[K\r\n", KEYPAD) == (b"", KEYPAD)
    assert strip_screens_from(b"Tasks\r\n\x1b[?1l\x1b>\x1b[50;1H\r\nbye\r\n", KEYPAD) == (b"bye\r\n", NORMAL)
    assert strip_screens_from(b"plain\r\n", NORMAL) == (b"plain\r\n", NORMAL)
