"""systemd's two small protocols, without a dependency: sd_notify and socket activation.

sd_notify tells systemd (Type=notify) that the daemon is ready or stopping.

systemd passes the address of its notification socket in `$NOTIFY_SOCKET`: a path, or an
abstract-namespace name written with a leading `@`. Each message is one datagram of
newline-separated `KEY=value` assignments. Outside systemd there is no `$NOTIFY_SOCKET` and every
call is a no-op.

Socket activation (the optional sshkeep.socket): systemd binds the daemon's socket and passes the
listening socket as fd 3 with `$LISTEN_PID`/`$LISTEN_FDS`, so connections wait in its backlog
while the daemon (re)starts.
"""

from __future__ import annotations

import os
import socket

import structlog

log = structlog.get_logger(__name__)


def socket_address(value: str) -> str | None:
    """The `connect()` address for a `$NOTIFY_SOCKET` value (`@name` is the abstract namespace)."""
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock (`vsock:…`) and relative paths: not for a user daemon


class Notifier:
    """Sends state changes to the service manager that started us, if any."""

    def __init__(self, address: str | None) -> None:
        self.address = address

    @classmethod
    def from_env(cls) -> Notifier:
        """Take `$NOTIFY_SOCKET` out of the environment, so that tmux, ssh and other children
        never inherit it and cannot speak for the daemon."""
        value = os.environ.pop("NOTIFY_SOCKET", "")
        return cls(socket_address(value) if value else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` assignments in one datagram; False when not under systemd or on error."""
        if self.address is None:
            return False
        payload = "\n".join(a.replace("\n", " ") for a in assignments).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Non-blocking: a full notification queue must never stall the event loop.
                sock.setblocking(False)
                sock.connect(self.address)
                sock.send(payload)
        except OSError as exc:
            log.warning("sd_notify_failed", address=self.address.replace("\0", "@"), error=str(exc))
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", f"MAINPID={os.getpid()}", *([f"STATUS={status}"] if status else []))

    def stopping(self, status: str = "") -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={status}"] if status else []))


# --- socket activation ----------------------------------------------------------------------------

LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at fd 3


def listen_socket() -> socket.socket | None:
    """The listening socket systemd passed us (sshkeep.socket), or None without socket activation.

    The LISTEN_* variables are removed from the environment either way, so children never
    mistake the socket for theirs.
    """
    pid = os.environ.pop("LISTEN_PID", "")
    fds = os.environ.pop("LISTEN_FDS", "")
    os.environ.pop("LISTEN_FDNAMES", None)
    if pid != str(os.getpid()) or not fds.isdigit() or int(fds) < 1:
        return None
    if int(fds) > 1:
        log.warning("socket_activation_extra_fds", fds=int(fds), used=LISTEN_FDS_START)
    sock = socket.socket(fileno=LISTEN_FDS_START)
    sock.set_inheritable(False)
    return sock
