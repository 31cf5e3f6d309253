"""The composition root and the daemon's life: one per socket (flock first), a private socket,
clean shutdown.

`Daemon` builds and owns every service: the tmux client, the store, the askpass broker, the session
manager, the command runner, the side channels, file transfers and the reaper. Each service gets
narrow dependencies (a lookup callable, the store, the tmux client, the current settings), never
another service whole, so no service module imports another's owner.

Shutting the daemon down never touches the tmux server: sessions keep running and the next
daemon adopts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import os
import signal
import socket
from pathlib import Path
from typing import IO

import structlog
from aiohttp import web

from sshkeep.common.auditchain import timestamp
from sshkeep.common.config import ConfigSource, load_config
from sshkeep.common.errors import DaemonAlreadyRunning, SshkeepError
from sshkeep.common.paths import Paths, claim_runtime_dir, ensure_private_dir
from sshkeep.common.settings import Settings
from sshkeep.daemon.api.app import build_app
from sshkeep.daemon.api.audit import AUDIT, cap_daemon_log
from sshkeep.daemon.api.core import Services
from sshkeep.daemon.disk import DiskWatch
from sshkeep.daemon.files.local import LocalFiles
from sshkeep.daemon.files.sidechannel import SideChannels, run_side_command
from sshkeep.daemon.files.transfers import Transfers
from sshkeep.daemon.policy.guard import Guard
from sshkeep.daemon.sdnotify import Notifier, listen_socket
from sshkeep.daemon.sessions.askpass import AuthBroker
from sshkeep.daemon.sessions.commands import Commands
from sshkeep.daemon.sessions.control import Control
from sshkeep.daemon.sessions.jobs import Jobs
from sshkeep.daemon.sessions.manager import SessionManager
from sshkeep.daemon.sessions.reaper import Reaper
from sshkeep.daemon.sessions.secrets import Answers, SecretStore
from sshkeep.daemon.sessions.session import Session
from sshkeep.daemon.sessions.store import Store
from sshkeep.daemon.sessions.tmux import Tmux

log = structlog.get_logger(__name__)

YOUNG_GC_THRESHOLD = 10_000  # net container allocations between passes over the youngest objects


class Daemon:
    """Every service of one daemon, wired together; `start` and `stop` run them in order."""

    def __init__(self, paths: Paths, config: ConfigSource | None = None) -> None:
        self.paths = paths
        self.config = config or ConfigSource(paths.config_file)
        self.tmux = Tmux(paths.tmux_args, paths.runtime_dir / "tmux.conf")
        # Variables that secrets name stay out of tmux's environment, hence out of every pane.
        self.tmux.hidden_env = lambda: self.config.current().secret_vars
        self.store = Store(paths.db_file)
        self.auth = AuthBroker(paths, self.config)
        m = self.manager = SessionManager(paths, self.config, self.tmux, self.store, self.auth)
        self.side_channels = SideChannels(m.sessions.get, paths.control_dir, self.tmux)
        self.control = Control(m.get, m.sessions, self.tmux)
        self.secrets = SecretStore(self.config)
        self.local_files = LocalFiles(m.get, self.side_channels, self.settings, paths.state_dir / "downloads")
        self.commands = Commands(
            m.terminal,
            m.ensure_ready,
            self.store,
            self.tmux,
            side=self.side_command,
            guard=self.control.refuse_if_human,
            report=self.control.report,
            advise=self.secrets.advise,
            local=self.local_files,
        )
        self.answers = Answers(m.get, self.commands, self.tmux, self.control.refuse_if_human, self.secrets)
        self.transfers = Transfers(m.get, self.side_channels, self.settings)
        self.reaper = Reaper(m.sessions, m.close, self.settings)
        self.guard = Guard(m)  # the guard rails: one service every route that runs something asks
        self.jobs = m.jobs = Jobs(m, self.commands, self.side_command)
        self.reaper.jobs_cleanup = self.jobs.cleanup
        self.disk = DiskWatch(paths.state_dir, m.panes, m.dropping)  # what a full disk kept unwritten
        self.disk.watch("state database", self.store.waiting)

    async def side_command(self, s: Session, script: str, timeout: float) -> tuple[int | None, str, str]:
        """Run `script` on the session's ssh master beside its terminals (jobs' signals, probes and
        remote files; the background-job note): exit code, stdout, stderr."""
        o = await run_side_command(self.side_channels, s, script, timeout, 65536)
        return o.exit_code, o.stdout.decode(errors="replace"), o.stderr.decode(errors="replace")

    def settings(self) -> Settings:
        """The current tunables (re-read when config.yml changes; one stat per call)."""
        return self.config.current().tunables

    def services(self) -> Services:
        """What the HTTP layer gets."""
        return Services(
            manager=self.manager,
            commands=self.commands,
            answers=self.answers,
            control=self.control,
            jobs=self.jobs,
            transfers=self.transfers,
            local_files=self.local_files,
            reaper=self.reaper,
            guard=self.guard,
            settings=self.settings,
            audit_log=self.paths.audit_log,
            daemon_log=self.paths.daemon_log,
            disk=self.disk,
        )

    async def start(self) -> None:
        await self.manager.start()
        await asyncio.to_thread(self.auth.install)  # the SSH_ASKPASS helper, in the runtime dir
        self.reaper.start()
        self.control.start()

    async def stop(self) -> None:
        """Stop every service, users first; the tmux server and its sessions stay."""
        await self.reaper.stop()
        await self.control.stop()
        await self.side_channels.close_all()  # the sessions themselves stay
        await self.manager.stop()
        await self.tmux.close()
        self.store.close()


def take_lock(lock_path: Path, socket_path: Path) -> IO[str]:
    """Hold an exclusive flock for this socket, or explain who holds it."""
    f = open(lock_path, "a+")  # noqa: SIM115 - held for the daemon's lifetime
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        f.seek(0)
        holder = f.read().strip() or "unknown"
        f.close()
        raise DaemonAlreadyRunning(
            f"another sshkeep daemon (pid {holder}) already serves {socket_path}"
        ) from exc
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def activated_socket(socket_path: Path) -> socket.socket | None:
    """The listening socket sshkeep.socket passed us, checked to be this instance's socket."""
    sock = listen_socket()
    if sock is None:
        return None
    name = sock.getsockname() if sock.family == socket.AF_UNIX else None
    if sock.type != socket.SOCK_STREAM or name != str(socket_path):
        sock.close()
        raise SshkeepError(
            f"socket activation passed {name or sock.family.name!r}, but this daemon serves {socket_path}",
            hint="Reinstall the units for this instance: `sshkeep service install`, then "
            "`systemctl --user daemon-reload && systemctl --user restart sshkeep.socket`.",
        )
    return sock


LISTEN_BACKLOG = 4096  # the kernel clamps it to net.core.somaxconn


async def listen(runner: web.AppRunner, socket_path: Path, activated: socket.socket | None) -> None:
    """Serve on the socket systemd passed, else bind our own (0600)."""
    if activated is not None:
        await web.SockSite(runner, activated).start()
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(socket_path)  # stale: we hold the lock, so no daemon serves it
        old_umask = os.umask(0o177)
        try:
            # A full backlog makes a client's non-blocking connect() fail with EAGAIN, which
            # asyncio reports later as "not connected": bursts of clients must queue, not fail.
            site = web.UnixSite(runner, str(socket_path), backlog=LISTEN_BACKLOG)
            await site.start()
        finally:
            os.umask(old_umask)
    os.chmod(socket_path, 0o600)


def _refusal_record(usual: Path, problem: str, using: Path) -> dict[str, object]:
    """The audit line saying that the guessable runtime dir was someone else's and was not used."""
    return {
        "ts": timestamp(),
        "event": "runtime_dir_refused",
        "decision": "refused",
        "path": str(usual),
        "problem": problem,
        "using": str(using),
    }


def rotate_own_log(paths: Paths) -> None:
    """Started by a shim, our stderr is the daemon log: rotate it by its settings before our first
    lines of work (the shim spawns us before it could read config.yml itself)."""
    with contextlib.suppress(OSError):
        cap_daemon_log(paths.daemon_log, *load_config(paths.config_file).tunables.daemon_log_rotation)


def settle_collector() -> None:
    """Once serving: what start-up loaded (modules, models, the grammar, resumed sessions) leaves
    the cyclic collector's sight, and its youngest generation is collected 10,000 net allocations
    apart instead of 700.

    With the defaults, 50 commands in flight kept 1,000-3,000 live objects (their tasks, contexts,
    requests) in the youngest generation, each pass took 0.7-1 ms and came every ~30 commands,
    and a full pass over the start-up objects stalled everything for ~30 ms; most objects die by
    reference count, so the higher threshold came 2 times in a run of 4,000 commands (the
    collector's time fell from 150-230 ms to ~5 ms)."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


async def serve(paths: Paths, ready: asyncio.Event | None = None) -> None:
    notifier = Notifier.from_env()  # before any child (tmux) could inherit $NOTIFY_SOCKET
    activated = activated_socket(paths.socket)
    usual = paths.runtime_dir
    paths, refused = await asyncio.to_thread(claim_runtime_dir, paths)
    if refused is not None:
        log.warning("runtime_dir_refused", refused=str(usual), problem=refused, using=str(paths.runtime_dir))
    ensure_private_dir(paths.socket.parent)
    lock = take_lock(paths.socket.parent / (paths.socket.name + ".lock"), paths.socket)
    rotate_own_log(paths)  # only the daemon that got the lock: a losing one must not move the log
    d = Daemon(paths)
    m = d.manager
    runner: web.AppRunner | None = None
    try:
        await d.start()
        app = build_app(d.services())
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        if refused is not None:
            await app[AUDIT].write(_refusal_record(usual, refused, paths.runtime_dir))
        await listen(runner, paths.socket, activated)
        log.info("daemon_listening", socket=str(paths.socket), pid=os.getpid(), sessions=len(m.sessions))
        settle_collector()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, stop.set)
        if ready is not None:
            ready.set()
        notifier.ready(f"serving {len(m.sessions)} sessions on {paths.socket}")
        await stop.wait()
        log.info("daemon_stopping")
        notifier.stopping("stopping; the sessions keep running in tmux")
    finally:
        if runner is not None:
            await runner.cleanup()
        if activated is None:  # an activated socket stays: systemd owns it, connections queue there
            with contextlib.suppress(FileNotFoundError):
                paths.socket.unlink()
        await d.stop()
        lock.close()
