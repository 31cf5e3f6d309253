"""The API client's reply parsing and its filled-in paths."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from sshkeep.common.client import ApiClient, _parse_json
from sshkeep.common.errors import SshkeepError
from sshkeep.common.operations import OPERATIONS


def test_reply_json_is_what_json_loads_makes_lone_surrogates_included() -> None:
    bodies = [
        {"a": 1, "b": [1.5, None, True], "c": "x\u00e9\U0001f600", "big": 10**30, "nested": {"d": ""}},
        {"entries": ["caf\udce9", "\ud800"]},  # a file name that is not UTF-8, as its surrogates
    ]
    for body in bodies:
        data = json.dumps(body).encode()
        assert _parse_json(data) == json.loads(data) == body
    for bad in (b"", b"{", b"\xff", b"<html>"):
        with pytest.raises(ValueError):
            _parse_json(bad)


async def test_calls_fill_in_and_quote_their_paths_once_per_value(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir(mode=0o700)
    sock = run / "api.sock"
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = b'{"error": {"code": "not_found", "message": "no such session", "hint": "list them"}}'
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed its keep-alive connection
                return
            seen.append(head.split(b" ")[1].decode())
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    server = await asyncio.start_unix_server(handle, path=str(sock))
    os.chmod(sock, 0o600)
    try:
        async with ApiClient(sock) as client:
            for sid in ("a/b c", "a/b c", "plain"):
                with pytest.raises(SshkeepError, match="no such session"):
                    await client.get_session(sid)
    finally:
        server.close()
    op = OPERATIONS["get_session"]
    assert seen == [op.url(session_id="a/b c"), op.url(session_id="a/b c"), op.url(session_id="plain")]
    assert "a%2Fb%20c" in seen[0]
