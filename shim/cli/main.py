"""The `sshkeep` command: daemon, mcp, status (and the human side of the API)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from sshkeep import __version__
from sshkeep.common.client import ApiClient
from sshkeep.common.errors import SshkeepError
from sshkeep.common.logs import configure_logging
from sshkeep.common.paths import resolve_paths
from sshkeep.shim.cli import human, person, service


def _cmd_daemon(args: argparse.Namespace) -> int:
    from sshkeep.daemon.server import serve

    configure_logging(args.log_level)
    try:
        asyncio.run(serve(resolve_paths()))
    except SshkeepError as err:
        print(f"sshkeep daemon: {err.message}\n{err.hint}", file=sys.stderr)
        return 1
    return 0


def _cmd_mcp(args: argparse.Namespace) -> int:
    from sshkeep.shim.mcp_server import run_stdio

    configure_logging(args.log_level)
    asyncio.run(run_stdio(resolve_paths()))
    return 0


async def _status(as_json: bool) -> int:
    paths = resolve_paths()
    async with ApiClient(paths.socket, timeout=10) as client:
        try:
            health = await client.health()
        except SshkeepError as err:
            report = {
                "status": "not running",
                "socket": str(paths.socket),
                "sessions": 0,
                "attach": paths.attach_command(),
                "error": err.message,
            }
            if as_json:
                print(json.dumps(report))
            else:
                print(
                    f"daemon: not running ({err.message})\nsocket: {paths.socket}\nstart it: sshkeep daemon"
                )
            return 1
    report = {
        "status": health.status,
        "socket": health.socket,
        "sessions": health.sessions,
        "attach": health.attach,
        "pid": health.pid,
        "version": health.version,
        "uptime_seconds": health.uptime_seconds,
    }
    if as_json:
        print(json.dumps(report))
    else:
        print(
            f"daemon: {health.status} (pid {health.pid}, version {health.version})\n"
            f"socket: {health.socket}\nsessions: {health.sessions}\nwatch: {health.attach}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sshkeep", description="Persistent interactive SSH terminals for agents and people."
    )
    p.add_argument("--version", action="version", version=f"sshkeep {__version__}")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (logs go to stderr)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("daemon", help="run the daemon in the foreground")
    sub.add_parser("mcp", help="run the stdio MCP server (starts the daemon if none answers)")
    st = sub.add_parser("status", help="daemon health, socket, attach command, session count")
    st.add_argument("--json", action="store_true", help="print JSON")
    human.add_parsers(sub)
    person.add_parsers(sub)
    service.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cmd == "daemon":
        return _cmd_daemon(args)
    if args.cmd == "mcp":
        return _cmd_mcp(args)
    if args.cmd == "status":
        return asyncio.run(_status(args.json))
    handler = getattr(args, "handler", None)  # subcommands that set_defaults(handler=...)
    if handler is not None:
        return int(handler(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
