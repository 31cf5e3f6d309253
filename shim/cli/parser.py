"""The `sshkeep` command line's grammar: every subcommand, its arguments, and the handler to run.

This module imports nothing but the standard library, so `sshkeep --help` (and argument errors)
answer at once; a subcommand's handler is named as `module:function` and imported only when that
subcommand runs (aiohttp, pydantic and structlog cost most of a start-up).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

from sshkeep import __version__

SERVICE_KINDS = ("systemd", "launchd")


def _columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` finds it ($COLUMNS, then stdout's tty,
    else 80), without importing shutil (and with it zlib, bz2 and lzma) into every command."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    out = sys.__stdout__
    if out is None:
        return 80
    try:
        return os.get_terminal_size(out.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, given the width (argparse works it out through shutil)."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ) -> None:
        super().__init__(
            prog, indent_increment, max_help_position, _columns() - 2 if width is None else width
        )


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (its subcommands' parsers too) with that formatter."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)


def _handler(sub: argparse.ArgumentParser, target: str) -> None:
    sub.set_defaults(handler=target)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sshkeep", description="Persistent interactive SSH terminals for agents and people.")
    p.add_argument("--version", action="version", version=f"sshkeep {__version__}")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (logs go to stderr)")
    sub = p.add_subparsers(dest="cmd", required=True)

    _handler(sub.add_parser("daemon", help="run the daemon in the foreground"), "main:cmd_daemon")
    mcp = sub.add_parser("mcp", help="run the stdio MCP server (starts the daemon if none answers)")
    _handler(mcp, "main:cmd_mcp")
    st = sub.add_parser("status", help="daemon health, socket, attach command, session count")
    st.add_argument("--json", action="store_true", help="print JSON")
    _handler(st, "main:cmd_status")

    ls = sub.add_parser("ls", help="list the sessions (starts the daemon if none answers)")
    ls.add_argument("--json", action="store_true", help="print the API's JSON")
    _handler(ls, "human:main")
    at = sub.add_parser("attach", help="watch or take over a session in tmux (detach: Ctrl-b d)")
    at.add_argument("session_id", metavar="ID")
    at.add_argument("-r", "--read-only", action="store_true", help="watch without sending keys (the default)")
    at.add_argument(
        "-t", "--terminal", metavar="T", help="one of the session's other terminals (a job's: its job id)"
    )
    at.add_argument(
        "--take", action="store_true", help="take control: the agent's typing is refused until you detach"
    )
    _handler(at, "human:main")
    lg = sub.add_parser("logs", help="a session's output, rendered as text")
    lg.add_argument("session_id", metavar="ID")
    lg.add_argument("-f", "--follow", action="store_true", help="keep printing new output until Ctrl-C")
    lg.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N lines")
    _handler(lg, "human:main")

    an = sub.add_parser("answer", help="type a password/token a session asks for (read without echo)")
    an.add_argument("session_id", metavar="ID")
    an.add_argument("--secret", metavar="NAME", help="type this secret from config.yml instead")
    an.add_argument("--stdin", action="store_true", help="read the answer from stdin (one line)")
    an.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the command (max 50)")
    _handler(an, "person:main")
    rl = sub.add_parser("release", help="hand a session taken with `attach --take` back to the agent")
    rl.add_argument("session_id", metavar="ID")
    _handler(rl, "person:main")
    ap = sub.add_parser("approvals", help="list the approval requests waiting for a person")
    ap.add_argument("--json", action="store_true", help="print the API's JSON")
    ap.add_argument("--all", action="store_true", help="include answered and expired requests")
    _handler(ap, "approvals:main")
    ok = sub.add_parser("approve", help="approve a request: that exact command may run")
    ok.add_argument("approval_id", metavar="ID")
    ok.add_argument(
        "--for",
        dest="seconds",
        type=float,
        metavar="SECONDS",
        help="a timed grant: the exact command may run again and again for SECONDS (default: once)",
    )
    _handler(ok, "approvals:main")
    no = sub.add_parser("decline", help="decline a request")
    no.add_argument("approval_id", metavar="ID")
    _handler(no, "approvals:main")
    au = sub.add_parser("audit", help="the audit log")
    au_sub = au.add_subparsers(dest="audit_cmd", required=True)
    au_sub.add_parser("verify", help="check the hash chain; names the first broken link (exit 1)")
    _handler(au, "approvals:main")

    sv = sub.add_parser(
        "service", help="install the daemon and its tmux server as user services (systemd, launchd)"
    )
    actions = sv.add_subparsers(dest="service_cmd", required=True)
    default_kind = "launchd" if sys.platform == "darwin" else "systemd"
    for name, text in (
        ("install", "write the unit files for this installation and print the commands that enable them"),
        ("uninstall", "remove the unit files (running services keep running until stopped)"),
        ("status", "which unit files are installed and current, and their state"),
    ):
        a = actions.add_parser(name, help=text)
        a.add_argument(
            "--kind",
            choices=SERVICE_KINDS,
            default=default_kind,
            help="service manager (default: %(default)s)",
        )
        if name == "status":
            a.add_argument("--json", action="store_true", help="print JSON")
    actions.add_parser("tmux-server", help="run the tmux server in the foreground (used by the tmux unit)")
    _handler(sv, "service:main")
    return p


def resolve(target: str) -> Callable[[argparse.Namespace], Any]:
    """The handler named `module:function`, a module of this package (imported now)."""
    module, _, function = target.partition(":")
    handler: Callable[[argparse.Namespace], Any] = getattr(
        importlib.import_module(f"sshkeep.shim.cli.{module}"), function
    )
    return handler
