"""The `sshkeep` command: daemon, mcp, status (and the human side of the API)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    from sshkeep.common.paths import resolve_paths
    from sshkeep.shim.early import EarlyStart

    paths = resolve_paths()
    started = EarlyStart.begin(paths)  # the daemon starts while the MCP SDK is imported

    import asyncio

    from sshkeep.common.logs import configure_logging
    from sshkeep.shim.mcp_server import run_stdio

    configure_logging(args.log_level)
    asyncio.run(run_stdio(paths, started))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Daemon health, from one blocking request: no event loop, no pydantic, no HTTP library."""
    import json

    from sshkeep.common.errors import SshkeepError
    from sshkeep.common.paths import resolve_paths

    paths = resolve_paths()
    try:
        health = fetch_health(paths.socket, timeout=10)
    except SshkeepError as err:
        report: dict[str, object] = {
            "status": "not running",
            "socket": str(paths.socket),
            "sessions": 0,
            "attach": paths.attach_command(),
            "error": err.message,
        }
        if args.json:
            print(json.dumps(report))
        else:
            print(f"daemon: not running ({err.message})\nsocket: {paths.socket}\nstart it: sshkeep daemon")
        return 1
    report = {name: health[name] for name in STATUS_FIELDS}
    if health.get("disk") is not None:
        report["disk"] = health["disk"]
    if args.json:
        print(json.dumps(report))
    else:
        print(
            f"daemon: {health['status']} (pid {health['pid']}, version {health['version']})\n"
            f"socket: {health['socket']}\nsessions: {health['sessions']}\nwatch: {health['attach']}"
        )
        disk = health.get("disk")
        if isinstance(disk, dict):
            print(f"disk: {disk.get('message')}")
    return 0


# The `Health` reply's fields and their JSON types (a unit test keeps them in step with the model).
HEALTH_FIELDS: dict[str, tuple[type, ...]] = {
    "status": (str,),
    "version": (str,),
    "pid": (int,),
    "socket": (str,),
    "sessions": (int,),
    "attach": (str,),
    "uptime_seconds": (int, float),
    "disk": (dict, type(None)),  # set while the disk is full (DiskNotice)
}
STATUS_FIELDS = ("status", "socket", "sessions", "attach", "pid", "version", "uptime_seconds")


def fetch_health(socket_path: Path, timeout: float) -> dict[str, object]:
    """GET /v1/health, checked field by field against the `Health` reply (as the API client would)."""
    import json

    from sshkeep.common.errors import DaemonUnavailable, SshkeepError, UnsafeRuntimeDir, from_payload
    from sshkeep.common.rundir import peer_problem, socket_problem
    from sshkeep.common.unixhttp import HttpUnavailable, call

    def refuse(problem: str | None) -> None:  # as the API client does, before anything is sent
        if problem is not None:
            raise UnsafeRuntimeDir(f"refusing to talk to {socket_path}: {problem}")

    refuse(socket_problem(socket_path))
    try:
        resp = call(
            str(socket_path), "GET", "/v1/health", timeout=timeout,
            check=lambda sock: refuse(peer_problem(sock, socket_path)),
        )  # fmt: skip
    except HttpUnavailable as exc:
        raise DaemonUnavailable(f"no sshkeep daemon answers on {socket_path} ({exc})") from exc
    try:
        payload = json.loads(resp.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SshkeepError(f"daemon sent a non-JSON reply (HTTP {resp.status})") from exc
    if resp.status >= 400:
        err = payload.get("error", {}) if isinstance(payload, dict) else {}
        raise from_payload(err if isinstance(err, dict) else {}, resp.status)
    if not isinstance(payload, dict):
        raise SshkeepError("daemon reply does not match Health: not a JSON object")
    for name, kinds in HEALTH_FIELDS.items():
        value = payload.get(name)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise SshkeepError(f"daemon reply does not match Health: {name} is {value!r}")
    if payload["status"] != "ok":
        raise SshkeepError(f"daemon reply does not match Health: status is {payload['status']!r}")
    return payload


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(resolve(args.handler)(args))


if __name__ == "__main__":
    sys.exit(main())
