"""An sshd behind a delayed path: a network namespace of its own, reached only through tests/relay.py.

Shared by the benchmark's RTT rows (bench/bench.py) and the tests of races under latency
(tests/integration/test_latency.py). `delayed_sshd(base, delay_ms)` starts a second sshd, with
the test sshd's host key, users and client key, inside a new network namespace (listening on the
namespace's loopback), and a relay on this namespace's 127.0.0.1 that adds `delay_ms` to each
round trip (half each way). Everything
(relay, sshd, namespace, files) is removed on exit. Needs root and `ip` (iproute2).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.sshd import SshServer, banner_ok

NS_PORT = 2222  # inside the namespace, where nothing else listens
_SERIAL = itertools.count(1)


@dataclass(frozen=True)
class DelayedPath:
    host: str
    port: int
    known_hosts: Path
    delay_ms: float

    def ssh_options(self) -> dict[str, str]:
        return {
            "UserKnownHostsFile": str(self.known_hosts),
            "GlobalKnownHostsFile": "/dev/null",
            "StrictHostKeyChecking": "yes",
            "IdentitiesOnly": "yes",
            "ConnectTimeout": "10",
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
        }


def problem() -> str | None:
    """Why a delayed path cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs `ip` (iproute2)"
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def delayed_sshd(base: SshServer, delay_ms: float) -> Iterator[DelayedPath]:
    ns = f"skdelay{os.getpid()}-{next(_SERIAL)}"
    work = Path(tempfile.mkdtemp(prefix="sk-delay-"))
    keys = Path(tempfile.mkdtemp(prefix="sk-delay-keys-"))  # sshd reads it as the login user
    keys.chmod(0o755)
    sshd: subprocess.Popen[bytes] | None = None
    relay: subprocess.Popen[bytes] | None = None
    made_ns = False
    try:
        _ip("netns", "add", ns)
        made_ns = True
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        authorized = keys / "authorized_keys"
        authorized.write_text(Path(f"{base.client_key}.pub").read_text())
        authorized.chmod(0o644)
        host_key = base.host_key
        config = work / "sshd_config"
        config.write_text(
            f"ListenAddress 127.0.0.1\nPort {NS_PORT}\nHostKey {host_key}\nPidFile {work / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\nStrictModes no\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin yes\nMaxSessions 100\nMaxStartups 100:30:200\nPrintMotd no\n"
            "PrintLastLog no\nX11Forwarding no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
        )
        sshd_bin = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin") or "/usr/sbin/sshd"
        sshd = subprocess.Popen(
            ["ip", "netns", "exec", ns, sshd_bin, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(work / "sshd.log", "ab"),  # noqa: SIM115
            start_new_session=True,
        )  # fmt: skip
        relay = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("relay.py")), "--netns", ns,
             "--target", str(NS_PORT), "--delay-ms", str(delay_ms / 2)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
        assert relay.stdout is not None
        port = int(relay.stdout.readline().strip() or 0)
        if not port:
            raise RuntimeError("the delay relay did not start")
        deadline = time.monotonic() + 20
        while not banner_ok(port):
            if sshd.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd in {ns} did not answer: {(work / 'sshd.log').read_text()[-2000:]}")
            time.sleep(0.1)
        known = work / "known_hosts"
        known.write_text(f"[127.0.0.1]:{port} {Path(f'{host_key}.pub').read_text().strip()}\n")
        yield DelayedPath("127.0.0.1", port, known, delay_ms)
    finally:
        for proc in (relay, sshd):
            if proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        if made_ns:
            # sshd's per-connection children run in the namespace too: end them before it goes.
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, check=False)
            for pid in out.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("netns", "delete", ns)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(keys, ignore_errors=True)
