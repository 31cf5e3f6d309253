"""An sshd behind a delayed path: a network namespace of its own, reached only through tests/relay.py.

Shared by the benchmark's RTT rows (bench/bench.py) and the tests of races under latency
(tests/integration/test_latency.py). `delayed_sshd(base, delay_ms)` starts a second sshd
(tests/netns.py: the test sshd's host key, users and client key, listening on the namespace's
loopback) and a relay on this namespace's 127.0.0.1 that adds `delay_ms` to each round trip (half
each way). Everything (relay, sshd, namespace, files) is removed on exit. Needs root and `ip`
(iproute2).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.netns import netns_sshd
from tests.netns import problem as problem
from tests.sshd import SshServer, banner_ok
from tests.support import stop_group


@dataclass(frozen=True)
class DelayedPath:
    host: str
    port: int
    known_hosts: Path
    delay_ms: float
    options: dict[str, str]

    def ssh_options(self) -> dict[str, str]:
        return {**self.options, "UserKnownHostsFile": str(self.known_hosts)}


@contextlib.contextmanager
def delayed_sshd(base: SshServer, delay_ms: float) -> Iterator[DelayedPath]:
    sshd_dir = base.host_key.parent
    relay: subprocess.Popen[bytes] | None = None
    with netns_sshd(base, sshd_dir, veth=False) as server, tempfile.TemporaryDirectory() as work:
        try:
            relay = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("relay.py")), "--netns", server.ns,
                 "--target", str(server.port), "--delay-ms", str(delay_ms / 2)],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True,
            )  # fmt: skip
            assert relay.stdout is not None
            port = int(relay.stdout.readline().strip() or 0)
            if not port:
                raise RuntimeError("the delay relay did not start")
            deadline = time.monotonic() + 20
            while not banner_ok(port):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"sshd in {server.ns} did not answer: {server.log_file.read_text()[-2000:]}"
                    )
                time.sleep(0.1)
            known = Path(work) / "known_hosts"
            host_key = Path(f"{sshd_dir / 'host_ed25519'}.pub").read_text().strip()
            known.write_text(f"[127.0.0.1]:{port} {host_key}\n")
            yield DelayedPath("127.0.0.1", port, known, delay_ms, server.ssh_options())
        finally:
            if relay is not None:
                stop_group(relay)
