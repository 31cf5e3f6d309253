"""The CLI grammar: light to import, every handler resolves, and it agrees with the modules; status."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sshkeep.common.errors import DaemonUnavailable, SshkeepError
from sshkeep.common.models.sessions import Health
from sshkeep.shim.cli import service
from sshkeep.shim.cli.main import HEALTH_FIELDS, STATUS_FIELDS, fetch_health
from sshkeep.shim.cli.parser import SERVICE_KINDS, build_parser, resolve
from tests.instance import clean_env


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def test_every_subcommand_has_a_handler_that_resolves() -> None:
    for name, sub in _subparsers(build_parser()).items():
        target = sub.get_default("handler")
        assert isinstance(target, str), name
        assert callable(resolve(target)), name


def test_service_kinds_agree() -> None:
    assert SERVICE_KINDS == service.KINDS


def test_parsing_imports_nothing_heavy() -> None:
    """`sshkeep --help` must not pay for aiohttp, pydantic or structlog."""
    code = (
        "import sys; from sshkeep.shim.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('aiohttp', 'pydantic', 'structlog', 'yaml', 'mcp') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="


def test_status_imports_nothing_heavy(tmp_path: Path) -> None:
    """`sshkeep status` answers without an event loop, pydantic or an HTTP library."""
    code = (
        "import sys; from sshkeep.shim.cli.main import main\n"
        "rc = main(['status', '--json'])\n"
        "names = ('aiohttp', 'pydantic', 'structlog', 'yaml', 'mcp', 'asyncio')\n"
        "print('HEAVY=' + ','.join(m for m in names if m in sys.modules), rc)"
    )
    env = {**clean_env(), "SSHKEEP_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    report, last = out.stdout.strip().splitlines()
    assert last == "HEAVY= 1"
    assert json.loads(report)["status"] == "not running"


def test_status_checks_the_health_reply_like_the_model() -> None:
    assert set(HEALTH_FIELDS) == set(Health.model_fields)
    assert set(STATUS_FIELDS) <= set(HEALTH_FIELDS)


def serve_once(path: Path, reply: bytes) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def answer() -> None:
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(reply)
        conn.close()
        listener.close()

    t = threading.Thread(target=answer)
    t.start()
    return t


def reply_of(status: int, payload: object) -> bytes:
    body = json.dumps(payload).encode()
    return f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


def test_fetch_health_validates_what_status_prints(tmp_path: Path) -> None:
    sock = tmp_path / "d.sock"
    good = {"status": "ok", "version": "1", "pid": 7, "socket": str(sock), "sessions": 2, "attach": "tmux a",
            "uptime_seconds": 1.5}  # fmt: skip
    t = serve_once(sock, reply_of(200, good))
    assert fetch_health(sock, 5) == good
    t.join(5)
    for bad in ({**good, "pid": "7"}, {**good, "sessions": True}, {**good, "status": "meh"}, [good]):
        sock.unlink(missing_ok=True)
        t = serve_once(sock, reply_of(200, bad))
        with pytest.raises(SshkeepError, match="does not match Health"):
            fetch_health(sock, 5)
        t.join(5)
    sock.unlink(missing_ok=True)
    t = serve_once(sock, reply_of(403, {"error": {"code": "forbidden", "message": "no", "hint": "h"}}))
    with pytest.raises(SshkeepError) as info:
        fetch_health(sock, 5)
    assert info.value.code == "forbidden"
    t.join(5)
    with pytest.raises(DaemonUnavailable, match="no sshkeep daemon answers"):
        fetch_health(tmp_path / "none.sock", 5)
