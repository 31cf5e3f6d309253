"""Peers and floors measured beside sshkeep in the same benchmark run.

- mcp-ssh-gateway (PyPI), installed into a throwaway venv and driven through the same MCP client
  as sshkeep, against the same loopback sshd.
- The bare pty round trip: one `ssh -tt` already logged in, `echo X` typed into its pty and the
  answer read back, with no tmux and no daemon: the physical floor.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from tests.sshd import SshServer

GATEWAY = "mcp-ssh-gateway"


def install_gateway(root: Path) -> Path | None:
    """A venv under `root` holding mcp-ssh-gateway; its console script, or None (with a log line)."""
    venv = root / "gateway-venv"
    script = venv / "bin" / GATEWAY
    if script.is_file():
        return script
    try:
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120
        )
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", GATEWAY],
            check=True,
            capture_output=True,
            timeout=600,
        )
    except (subprocess.SubprocessError, OSError) as exc:
        print(f"bench: could not install {GATEWAY}: {exc}", file=sys.stderr)
        return None
    return script if script.is_file() else None


def gateway_params(
    script: Path, sshd: SshServer, workdir: Path, port: int | None = None
) -> StdioServerParameters:
    """mcp-ssh-gateway with one server, `bench`: the test sshd (or whatever listens on `port`)."""
    conn = sshd.connection("bash")
    servers = {"servers": {"bench": {"host": conn["host"], "port": port or conn["port"], "user": conn["user"],
                                     "key_path": conn["key_path"], "description": "bench sshd"}}}  # fmt: skip
    cache = workdir / "gateway-cache"
    cache.mkdir(parents=True, exist_ok=True)
    env = {"HOME": str(workdir), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return StdioServerParameters(
        command=str(script),
        args=["--servers-config", json.dumps(servers), "--cache-dir", str(cache), "--log-output", "off"],
        env=env,
    )


def payload(res: Any) -> dict[str, Any]:
    """The gateway answers with one text block of JSON."""
    text = "".join(getattr(c, "text", "") for c in getattr(res, "content", []))
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {"raw": text}
    return data if isinstance(data, dict) else {"raw": data}


class GatewayEcho:
    """Echo round trips through mcp-ssh-gateway's `run` tool, in one shell it keeps open."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.session_id: str | None = None
        self.n = 0

    async def once(self) -> float:
        self.n += 1
        ms, data = await self._run(f"echo G{self.n}")
        if f"G{self.n}" not in json.dumps(data):
            raise RuntimeError(f"gateway echo returned {data!r}")
        return ms

    async def bulk(self, command: str) -> float:
        """ms until `command` has ended, as `run` reports it: with a first page of its output (the
        rest is for `read`, which this does not ask for)."""
        ms, data = await self._run(command, wait=300)
        if data.get("status") != "completed" or data.get("exit_code") != 0:
            raise RuntimeError(f"gateway bulk returned {str(data)[:300]}")
        return ms

    async def _run(self, command: str, **extra: Any) -> tuple[float, dict[str, Any]]:
        """One `run` in the gateway's shell (opened by the first): ms of the call, and its answer."""
        args: dict[str, Any] = {"server": "bench", "command": command, **extra}
        if self.session_id is not None:
            args["session_id"] = self.session_id
        start = time.perf_counter()
        res = await self.client.call_tool("run", args)
        ms = (time.perf_counter() - start) * 1000
        data = payload(res)
        self.session_id = str(data.get("session_id") or self.session_id or "") or None
        return ms, data


class BarePty:
    """`ssh -tt host` in a pty of its own, already logged in: type `echo X`, read until X comes back."""

    def __init__(self, sshd: SshServer, ssh_argv: list[str], host: str | None = None) -> None:
        dest = f"{sshd.users['bash']}@{host or sshd.host}"
        self.argv = [*ssh_argv, "-tt", dest, "exec bash --norc --noprofile"]
        self.proc: subprocess.Popen[bytes] | None = None
        self.fd = -1
        self.n = 0

    def start(self) -> None:
        master, slave = os.openpty()
        self.proc = subprocess.Popen(
            self.argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True
        )
        os.close(slave)
        self.fd = master
        os.write(self.fd, b"PS1='$ '; stty -echo\n")
        self._read_until(re.compile(rb"\$ $"), 15)

    def _read_until(self, pattern: re.Pattern[bytes], timeout: float) -> bool:
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return False
            buf += chunk
            if pattern.search(buf):
                return True
        return False

    def once(self) -> float | None:
        self.n += 1
        token = f"P{self.n}Q".encode()
        start = time.perf_counter()
        os.write(self.fd, b"echo " + token + b"\n")
        ok = self._read_until(re.compile(re.escape(token) + rb"\r?\n"), 10)
        return (time.perf_counter() - start) * 1000 if ok else None

    def bulk(self, command: str, timeout: float) -> float | None:
        """Run `command` and read all it prints until it ends: ms, or None on a timeout."""
        self.n += 1
        token = f"B{self.n}Q".encode()
        end = re.compile(re.escape(token) + rb"\r?\n")
        start = time.perf_counter()
        os.write(self.fd, f"{command}; echo B{self.n}Q\n".encode())
        tail = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                chunk = os.read(self.fd, 1 << 20)
            except OSError:
                return None
            tail = (tail + chunk)[-256:]
            if end.search(tail):
                return (time.perf_counter() - start) * 1000
        return None

    def stop(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=5)
        if self.fd >= 0:
            os.close(self.fd)


@contextlib.contextmanager
def bare_pty(sshd: SshServer, ssh_argv: list[str], host: str | None = None) -> Iterator[BarePty]:
    pty = BarePty(sshd, ssh_argv, host)
    try:
        pty.start()
        yield pty
    finally:
        pty.stop()
