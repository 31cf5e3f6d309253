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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libtmux
import yaml
from mcp import StdioServerParameters

from sshkeep.common.client import ApiClient
from sshkeep.common.paths import Paths, resolve_paths

REPO = Path(__file__).resolve().parent.parent


def clean_env(*drop: str, **extra: str) -> dict[str, str]:
    """This process's environment without sshkeep's and tmux's variables and PYTHONPATH (and any
    `drop` prefixes), plus `extra`. Children run the installed package, never the source tree."""
    dropped = ("SSHKEEP_", "TMUX", "PYTHONPATH", *drop)
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env.update(extra)
    return env


def run_sshkeep(
    *args: str, env: dict[str, str], timeout: float = 60, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m sshkeep ARGS` (the installed package) to the end, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "sshkeep", *args],
        env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd,
    )  # fmt: skip


@dataclass
class Instance:
    """One sshkeep world. `start()` runs the daemon; `stop()` ends it (tmux keeps running)."""

    home: Path
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The global default policy of the test config: admin, so suites that write their own entries
    # (and raw destinations) run what they run without asking. test_policy.py sets its own.
    settings: dict[str, Any] = field(default_factory=lambda: {"policy": "admin"})
    proc: subprocess.Popen[bytes] | None = None
    # Added to the daemon's environment only (e.g. a variable a ${VAR} secret names).
    daemon_env: dict[str, str] = field(default_factory=dict)
    log_level: str | None = None
    # Extra top-level config.yml keys (e.g. `secrets:`).
    extra_config: dict[str, Any] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return clean_env(SSHKEEP_HOME=str(self.home))

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
        doc: dict[str, Any] = {"connections": self.connections}
        if self.settings:
            doc["settings"] = self.settings
        doc.update(self.extra_config)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        path.chmod(mode)
        return path

    def client(self) -> ApiClient:
        return ApiClient(self.socket, timeout=90)

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run_sshkeep(*args, env=self.env, timeout=timeout)

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

    def tmux_server_pid(self) -> int:
        out = self.tmux("display-message", "-p", "#{pid}")
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())

    def pane_pid(self, sid: str) -> int:
        """The pid of the ssh client in session `sid`'s pane."""
        out = self.tmux("display-message", "-p", "-t", f"={sid}:", "#{pane_pid}")
        assert out.returncode == 0, out.stderr
        return int(out.stdout.strip())

    def kill_ssh(self, sid: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Kill the session's ssh, as a network drop or remote reboot would; returns its pid."""
        pid = self.pane_pid(sid)
        os.kill(pid, sig)
        return pid

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


def new_instance(connections: dict[str, dict[str, Any]], home: Path | None = None) -> Instance:
    """An instance with `connections` in its config.yml, in a fresh home under /tmp unless given."""
    inst = Instance(home or Path(tempfile.mkdtemp(prefix="skt-", dir="/tmp")))
    inst.write_config(connections)
    return inst


@contextlib.contextmanager
def instance_of(
    connections: dict[str, dict[str, Any]], *, start: bool = True, home: Path | None = None
) -> Iterator[Instance]:
    """A new instance, its daemon started unless `start` is false; destroyed (daemon, tmux server,
    home) when the block ends, however it ends."""
    inst = new_instance(connections, home)
    try:
        if start:
            inst.start()
        yield inst
    finally:
        inst.destroy()
