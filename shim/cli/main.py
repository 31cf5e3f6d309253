"""The `sshkeep` command: daemon, mcp, status (and the human side of the API)."""

from __future__ import annotations

import argparse
import sys

from sshkeep.shim.cli.parser import build_parser, resolve


def cmd_daemon(args: argparse.Namespace) -> int:
    import asyncio

    from sshkeep.common.errors import SshkeepError
    from sshkeep.common.logs import configure_logging
    from sshkeep.common.paths import resolve_paths
    from sshkeep.daemon.server import serve

    configure_logging(args.log_level)
    try:
        asyncio.run(serve(resolve_paths()))
    except SshkeepError as err:
        print(f"sshkeep daemon: {err.message}\n{err.hint}", file=sys.stderr)
        return 1
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    import asyncio

    from sshkeep.common.logs import configure_logging
    from sshkeep.common.paths import resolve_paths
    from sshkeep.shim.mcp_server import run_stdio

    configure_logging(args.log_level)
    asyncio.run(run_stdio(resolve_paths()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import asyncio

    return asyncio.run(_status(args.json))


async def _status(as_json: bool) -> int:
    import json

    from sshkeep.common.client import ApiClient
    from sshkeep.common.errors import SshkeepError
    from sshkeep.common.paths import resolve_paths

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(resolve(args.handler)(args))


if __name__ == "__main__":
    sys.exit(main())
