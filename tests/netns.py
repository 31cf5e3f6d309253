"""A second sshd inside a network namespace of its own: a network path that tests can break.

`netns_sshd(base, sshd_dir)` starts an sshd with the test sshd's host key, users and client key
(tests/sshd.py) inside a new network namespace, and removes everything (sshd, its connections,
the namespace, files) on exit. Two ways in:

- `veth=True`: a veth pair joins the namespace to this one; sshd listens on the namespace's end
  and clients connect to it directly. `black_hole()` makes the namespace drop every packet on its
  veth (nftables, inside the namespace: this namespace's firewall is untouched) until `restore()`,
  as a cut cable or a dead route would.
- `veth=False`: sshd listens on the namespace's own loopback, reachable only through something
  that enters the namespace (bench/relay.py, the benchmark's delayed path).

`slow_logins(seconds)` makes every later login wait that long before its shell starts (a host
slow to log in after it came back), until `slow_logins(0)`.

`restart()` stops sshd and every connection it serves, as a host reboot or `systemctl stop`
with its sessions would, and starts it again on the same address. Needs root, `ip` (iproute2)
and, for `black_hole`, `nft` (nftables).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.sshd import SshServer, banner_ok
from tests.support import stop_group

NS_PORT = 2222  # inside the namespace, where nothing else listens
# Text sshd shows before authentication (ssh prints it): a login banner no reply may return.
BANNER = "SSHKEEP-TEST-BANNER: authorized use only"


def problem() -> str | None:
    """Why a namespaced sshd cannot be made here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs `ip` (iproute2)"
    return None


def _run(*args: str) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed: {done.stderr.strip() or done.stdout.strip()}")


def _subnet() -> tuple[str, str]:
    """This process's /30 of 10.213.0.0/16 (host end, namespace end): concurrent runs differ."""
    block = (os.getpid() % 16384) * 4
    a, b = divmod(block, 256)
    return f"10.213.{a}.{b + 1}", f"10.213.{a}.{b + 2}"


@dataclass
class NetnsSshd:
    """An sshd in namespace `ns`, reached at `host`:`port` (see the module docstring)."""

    ns: str
    host: str
    port: int
    known_hosts: Path
    base: SshServer
    veth: str | None  # the namespace's end of the veth pair, when there is one
    config: Path
    log_file: Path
    slow_flag: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

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

    def connection(self, shell: str, **options: str) -> dict[str, object]:
        """A config.yml entry logging in by key as the test user whose login shell is `shell`."""
        return {
            "host": self.host,
            "port": self.port,
            "user": self.base.users[shell],
            "key_path": str(self.base.client_key),
            "ssh_options": {**self.ssh_options(), **options},
        }

    def start(self) -> None:
        sshd = shutil.which("sshd", path="/usr/sbin:/usr/local/sbin:/sbin") or "/usr/sbin/sshd"
        with open(self.log_file, "ab") as err:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.ns, sshd, "-D", "-e", "-f", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True,
            )  # fmt: skip
        if self.veth is None:
            return  # only reachable through the namespace: the caller's relay checks it
        deadline = time.monotonic() + 20
        while not banner_ok(self.port, self.host):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sshd in {self.ns} did not answer: {self.log_file.read_text()[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        """End sshd and every connection it serves (their handlers run in the namespace too)."""
        proc, self.process = self.process, None
        if proc is not None:
            stop_group(proc)
        out = subprocess.run(["ip", "netns", "pids", self.ns], capture_output=True, text=True, check=False)
        for pid in out.stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGTERM)

    def slow_logins(self, seconds: int) -> None:
        if seconds:
            self.slow_flag.write_text(f"{seconds}\n")
            self.slow_flag.chmod(0o644)
        else:
            self.slow_flag.unlink(missing_ok=True)

    def restart(self) -> None:
        self.stop()
        self.start()

    def black_hole(self) -> None:
        """Drop every packet in and out of the namespace's veth until `restore()`."""
        if self.veth is None:
            raise RuntimeError("black_hole needs the veth path")
        rules = (
            "add table inet skhole; "
            "add chain inet skhole in { type filter hook input priority 0; policy accept; }; "
            "add chain inet skhole out { type filter hook output priority 0; policy accept; }; "
            f'add rule inet skhole in iifname "{self.veth}" drop; '
            f'add rule inet skhole out oifname "{self.veth}" drop'
        )
        _run("ip", "netns", "exec", self.ns, "nft", rules)

    def restore(self) -> None:
        _run("ip", "netns", "exec", self.ns, "nft", "delete table inet skhole")


@contextlib.contextmanager
def netns_sshd(base: SshServer, sshd_dir: Path, *, veth: bool = True) -> Iterator[NetnsSshd]:
    ns = f"sk{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="sk-netns-"))
    keys = Path(tempfile.mkdtemp(prefix="sk-netns-keys-"))  # sshd reads it as the login user
    keys.chmod(0o755)
    host_end, ns_end = f"skh{os.getpid()}", f"skn{os.getpid()}"
    made_ns = made_link = False
    server: NetnsSshd | None = None
    try:
        _run("ip", "netns", "add", ns)
        made_ns = True
        _run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")
        listen = "127.0.0.1"
        if veth:
            host_ip, listen = _subnet()
            _run("ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end)
            made_link = True
            _run("ip", "link", "set", ns_end, "netns", ns)
            _run("ip", "addr", "add", f"{host_ip}/30", "dev", host_end)
            _run("ip", "link", "set", host_end, "up")
            _run("ip", "netns", "exec", ns, "ip", "addr", "add", f"{listen}/30", "dev", ns_end)
            _run("ip", "netns", "exec", ns, "ip", "link", "set", ns_end, "up")
        authorized = keys / "authorized_keys"
        authorized.write_text(Path(f"{base.client_key}.pub").read_text())
        authorized.chmod(0o644)
        slow = keys / "slow"
        banner = keys / "banner"
        banner.write_text(BANNER + "\n")
        banner.chmod(0o644)
        host_key = sshd_dir / "host_ed25519"
        config = work / "sshd_config"
        config.write_text(
            f"ListenAddress {listen}\nPort {NS_PORT}\nHostKey {host_key}\nPidFile {work / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {authorized}\nStrictModes no\nPubkeyAuthentication yes\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
            "PermitRootLogin yes\nMaxSessions 100\nMaxStartups 100:30:200\nPrintMotd no\n"
            f"PrintLastLog no\nX11Forwarding no\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
            f"Banner {banner if veth else 'none'}\n"
        )
        if veth:  # the login shell itself, started late while the flag file exists (see slow_logins)
            with config.open("a") as f:
                f.write(f'ForceCommand if [ -e {slow} ]; then sleep "$(cat {slow})"; fi; exec "$SHELL" -l\n')
        known = work / "known_hosts"
        known.write_text(f"[{listen}]:{NS_PORT} {Path(f'{host_key}.pub').read_text().strip()}\n")
        server = NetnsSshd(
            ns=ns, host=listen, port=NS_PORT, known_hosts=known, base=base, veth=ns_end if veth else None,
            config=config, log_file=work / "sshd.log", slow_flag=slow,
        )  # fmt: skip
        server.start()
        yield server
    finally:
        if server is not None:
            server.stop()
        if made_link:
            with contextlib.suppress(RuntimeError):
                _run("ip", "link", "delete", host_end)  # removes both ends
        if made_ns:
            with contextlib.suppress(RuntimeError):
                _run("ip", "netns", "delete", ns)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(keys, ignore_errors=True)
