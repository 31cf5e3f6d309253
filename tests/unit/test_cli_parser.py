"""The CLI grammar: light to import, every handler resolves, and it agrees with the modules."""

from __future__ import annotations

import argparse
import subprocess
import sys

from sshkeep.shim.cli import service
from sshkeep.shim.cli.parser import SERVICE_KINDS, build_parser, resolve


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
