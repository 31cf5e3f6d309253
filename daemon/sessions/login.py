"""Who a session logs in as: `ssh -G` resolves the session's own argv (config entry, explicit
username/port, ~/.ssh/config) to the user, host and port ssh will use, without connecting."""

from __future__ import annotations

import asyncio
import contextlib


def _g_argv(argv: list[str]) -> list[str]:
    """The session's ssh argv with -G: print the resolved configuration instead of connecting."""
    if not argv:
        return []
    return [argv[0], "-G", *argv[1:]]


def parse_g(out: str) -> str | None:
    """`user@host:port` (port only when not 22) from `ssh -G` output."""
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key in ("user", "hostname", "port") and key not in values:
            values[key] = value.strip()
    if "hostname" not in values:
        return None
    login = values["hostname"]
    if values.get("user"):
        login = f"{values['user']}@{login}"
    if values.get("port") and values["port"] != "22":
        login += f":{values['port']}"
    return login


async def effective_login(argv: list[str], timeout: float = 5.0) -> str | None:
    """`user@host[:port]` that `argv` logs in as, or None when ssh cannot say."""
    cmd = _g_argv(argv)
    if not cmd:
        return None
    try:
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError:
        return None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return None
    if proc.returncode != 0:
        return None
    return parse_g(out.decode("utf-8", errors="replace"))
