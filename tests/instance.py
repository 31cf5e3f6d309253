"""A real sshkeep instance for integration tests: its own SSHKEEP_HOME, daemon and tmux server."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libtmux
import yaml
from mcp import StdioServerParameters

from sshkeep.common.client import ApiClient
from sshkeep.common.paths import Paths, resolve_paths

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Instance:
    """One sshkeep world. `start()` runs the daemon; `stop()` ends it (tmux keeps running)."""

    home: Path
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    # Added to the daemon's environment only (e.g. a variable a ${VAR} secret names).
    daemon_env: dict[str, str] = field(default_factory=dict)
    log_level: str | None = None
    # Extra top-level config.yml keys (e.g. `secrets:`).
    extra_config: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SSHKEEP_", "TMUX"))}
        env["SSHKEEP_HOME"] = str(self.home)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    @property
    def paths(self) -> Paths:
        return resolve_paths(self.env)

    @property
    def socket(self) -> Path:
        return self.paths.socket

    def write_config(self, connections: dict[str, dict[str, Any]] | None = None, mode: int = 0o600) -> Path:
        if connections is not None:
            self.connections = connections
        path = self.home / "config.yml"
        doc = {"connections": self.connections, **self.extra_config}
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(mode)
        return path

    def client(self) -> ApiClient:
        return ApiClient(self.socket, timeout=90)

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sshkeep", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def mcp_params(self) -> StdioServerParameters:
        return StdioServerParameters(command=sys.executable, args=["-m", "sshkeep", "mcp"], env=self.env)

    def curl(self, path: str, method: str = "GET", body: object | None = None) -> tuple[int, Any]:
        """What `curl --unix-socket` does, with the real curl binary when present."""
        args = ["curl", "-sS", "--unix-socket", str(self.socket), "-X", method, "-w", "\n%{http_code}"]
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
        args.append("http://localhost" + urllib.parse.quote(path, safe="/?=&"))
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        out = subprocess.run(args, input=data, capture_output=True, timeout=60, check=True).stdout.decode()
        text, _, code = out.rpartition("\n")
        return int(code), json.loads(text) if text else None

    def start(self, wait: float = 20.0) -> None:
        log = open(self.home / "daemon.stderr", "ab")  # noqa: SIM115 - handed to the child
        level = ["--log-level", self.log_level] if self.log_level else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sshkeep", *level, "daemon"],
            env={**self.env, **self.daemon_env},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.daemon_log()}")
            code = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", str(self.socket),
                 "http://localhost/v1/health"],
                capture_output=True, text=True, check=False,
            ).stdout  # fmt: skip
            if code == "200":
                return
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not answer within {wait}s:\n{self.daemon_log()}")

    def daemon_log(self) -> str:
        parts = []
        for p in (self.home / "daemon.stderr", self.paths.daemon_log):
            if p.exists():
                parts.append(p.read_text(errors="replace")[-5000:])
        return "\n".join(parts)

    def daemon_pid(self) -> int | None:
        code, body = self.curl("/v1/health")
        return int(body["pid"]) if code == 200 else None

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """Stop whatever daemon serves this home (ours or one a shim started)."""
        pid = None
        with contextlib.suppress(Exception):
            pid = self.daemon_pid()
        for p in {pid, self.proc.pid if self.proc else None} - {None}:
            assert p is not None
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.socket.exists() and sig != signal.SIGKILL:
            time.sleep(0.05)
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
            self.proc = None

    def tmux_server(self) -> libtmux.Server:
        """libtmux's view of this instance's private tmux server (for inspecting it in tests)."""
        kind, where = self.paths.tmux_args
        return libtmux.Server(socket_path=where) if kind == "-S" else libtmux.Server(socket_name=where)

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", *self.paths.tmux_args, *args], capture_output=True, text=True, timeout=10
        )

    def destroy(self) -> None:
        self.stop()
        # A daemon started by a shim is not our child: find it by its lock-file pid as well.
        lock = self.paths.socket.parent / (self.paths.socket.name + ".lock")
        with contextlib.suppress(Exception):
            pid = int(lock.read_text().strip())
            os.kill(pid, signal.SIGKILL)
        self.tmux("kill-server")
        shutil.rmtree(self.paths.runtime_dir, ignore_errors=True)
        shutil.rmtree(self.home, ignore_errors=True)


def new_instance(connections: dict[str, dict[str, Any]]) -> Instance:
    home = Path(tempfile.mkdtemp(prefix="skt-", dir="/tmp"))
    inst = Instance(home)
    inst.write_config(connections)
    return inst
