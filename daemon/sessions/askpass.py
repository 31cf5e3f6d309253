"""Secrets for ssh logins without argv, screen or logs: ssh's SSH_ASKPASS asks the daemon.

For a login whose entry (or one of its jump host entries) holds a password or key passphrase, the
session's ssh gets `SSH_ASKPASS=<runtime dir>/askpass`, `SSH_ASKPASS_REQUIRE=force`, the daemon's
socket and a fresh random token in its environment. ssh then runs the helper (`sshkeep.shim.askpass`) for
every question it has; the helper posts the prompt and the token to `POST /v1/askpass`, and the
daemon decides:

- a password prompt gets the password, a passphrase prompt the passphrase, each at most once per
  hop and login: ssh asking again means the answer was wrong, so the helper fails and ssh reports
  its own error (the argv also carries NumberOfPasswordPrompts=1) instead of looping;
- anything else (an unknown host key, a one-time code, a prompt for a secret nobody configured)
  goes to the terminal: the helper asks there itself, so the daemon sees the same question ssh
  would have printed, and the agent answers it with send_keys.

The secret travels only in the HTTP reply on the 0600 socket to a process whose parent is this
session's ssh (the tmux pane's process) or one of the jump ssh processes below it, checked with
SO_PEERCRED and the /proc parent chain (never by what an argv says); it is never in an argv, the
environment, the screen, a log or a file. A token replayed by any other process is refused (403,
audited).
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from sshkeep.common.config import ConfigSource, Connection
from sshkeep.common.errors import ConfigError, Forbidden
from sshkeep.common.models.configs import AskpassReply
from sshkeep.common.paths import Paths
from sshkeep.common.terminal.questions import detect_question

log = structlog.get_logger(__name__)

HELPER_NAME = "askpass"
# How far up from the helper the session's ssh may be: helper -> ssh (the session's, or a jump
# host's) -> the jump ssh's parent ssh ... A chain of a few jump hosts stays well within this.
MAX_ANCESTORS = 8
_PASSWORD_WORD = re.compile(r"\bpass(?:word|wd)\b", re.IGNORECASE)


@dataclass
class Login:
    """One login attempt of one session: what it may be told, and what it was told already."""

    session_id: str
    target: Connection
    hops: dict[str, Connection]
    answered: set[tuple[str, str]] = field(default_factory=set)


def classify(prompt: str) -> str | None:
    """`password`, `passphrase` or None (anything the daemon must not answer) for an ssh prompt."""
    q = detect_question(prompt.rstrip("\r\n"))
    if q is None:
        return None
    if q.kind == "passphrase":
        return "passphrase"
    if q.kind == "password" and _PASSWORD_WORD.search(q.text):
        return "password"
    return None


def helper_script(python: str, root: Path) -> str:
    """The shell script ssh runs as SSH_ASKPASS: a quick, isolated start of `sshkeep.shim.askpass`.

    `root` is the directory that holds the installed `sshkeep` package (site-packages)."""
    code = (
        f"import sys; sys.path.insert(0, {str(root)!r}); "
        "from sshkeep.shim.askpass import main; sys.exit(main(sys.argv[1:]))"
    )
    return (
        "#!/bin/sh\n"
        "# sshkeep's SSH_ASKPASS helper, written by the daemon (see sshkeep.daemon.sessions.askpass).\n"
        f'exec {shlex.quote(python)} -I -S -c {shlex.quote(code)} "$@"\n'
    )


def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # pid (comm) state ppid ...; comm may contain spaces and parentheses.
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None


class AuthBroker:
    """Hands ssh the configured password/passphrase through a one-time token."""

    def __init__(self, paths: Paths, config: ConfigSource) -> None:
        self.paths = paths
        self.config = config
        self.helper = paths.runtime_dir / HELPER_NAME
        self._logins: dict[str, Login] = {}
        self._tokens: dict[str, str] = {}  # session id -> its current token

    def install(self) -> None:
        """Write the helper script (0700) into the runtime dir; idempotent."""
        # shim/ is installed next to daemon/ (one distribution).
        text = helper_script(sys.executable, Path(__file__).resolve().parents[3])
        try:
            if self.helper.read_text() == text and os.access(self.helper, os.X_OK):
                return
        except OSError:
            pass
        tmp = self.helper.with_name(f".{HELPER_NAME}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, self.helper)

    def _hops(self, conn: Connection) -> dict[str, Connection]:
        """The jump hosts on the way to `conn`, by name (none when the config broke since the
        session's argv was built: only the hops' secrets are lost then)."""
        try:
            return {jump.name: jump for jump in self.config.current().jump_chain(conn)}
        except ConfigError:
            return {}

    def has_secrets(self, conn: Connection | None) -> bool:
        """Does `conn` (or a jump host on its way) have a configured secret for ssh to ask for?"""
        return conn is not None and _any_secret(conn, self._hops(conn))

    def env_for(self, session_id: str, conn: Connection | None) -> dict[str, str]:
        """Environment for the session's ssh (empty when no secret is configured).

        Each call starts a new login: the session's previous token stops working.
        """
        self.forget(session_id)
        if conn is None:
            return {}
        hops = self._hops(conn)
        if not _any_secret(conn, hops):
            return {}
        self.install()
        token = secrets.token_urlsafe(32)
        self._logins[token] = Login(session_id, conn, hops)
        self._tokens[session_id] = token
        return {
            "SSH_ASKPASS": str(self.helper),
            "SSH_ASKPASS_REQUIRE": "force",
            "SSHKEEP_ASKPASS_TOKEN": token,
            "SSHKEEP_ASKPASS_SOCKET": str(self.paths.socket),
        }

    def forget(self, session_id: str) -> None:
        """Drop any token still pending for this session."""
        token = self._tokens.pop(session_id, None)
        if token is not None:
            self._logins.pop(token, None)

    def session_of(self, token: str) -> str | None:
        """The session a token was issued to (None: unknown or replaced)."""
        login = self._logins.get(token)
        return login.session_id if login is not None else None

    def _caller(self, login: Login, peer_pid: int | None, hop: str | None, ssh_pid: int | None) -> str | None:
        """Which ssh runs the helper: "" the session's own, a hop's entry name, or None (no ssh of ours).

        Judged by process ancestry only: the helper's parent must be the session's ssh (`ssh_pid`,
        the pane's process), or a jump ssh that descends from it."""
        if peer_pid is None or not os.path.isdir("/proc"):
            # No peer credentials on this platform: the socket's 0600 mode and uid check remain.
            return hop or ""
        if ssh_pid is None:
            return None
        pid = _ppid(peer_pid)
        if pid == ssh_pid:
            return ""
        for _ in range(MAX_ANCESTORS):
            if pid is None or pid <= 1:
                return None
            pid = _ppid(pid)
            if pid == ssh_pid:
                return hop if hop in login.hops else None
        return None

    def decide(
        self, token: str, prompt: str, hop: str | None, peer_pid: int | None, ssh_pid: int | None = None
    ) -> AskpassReply:
        """What the helper should do with `prompt` (see the module docstring).

        `ssh_pid` is the session's ssh (its tmux pane's process). A known token from a process that
        does not descend from it (a replay) raises Forbidden: it gets nothing, and the refusal is
        audited with the request."""
        login = self._logins.get(token)
        if login is None:
            return AskpassReply(action="terminal", reason="unknown or replaced token")
        who = self._caller(login, peer_pid, hop, ssh_pid)
        if who is None:
            log.warning(
                "askpass_refused_caller", session=login.session_id, hop=hop, pid=peer_pid, ssh=ssh_pid
            )
            raise Forbidden(
                f"process {peer_pid} is not session {login.session_id}'s ssh (pid {ssh_pid}) nor below it: "
                "its askpass token was not issued to it",
                hint="Only the ssh that sshkeep started for a session may ask for its configured secrets.",
            )
        conn = login.target if who == "" else login.hops[who]
        kind = classify(prompt)
        secrets_by_kind = {"password": conn.password, "passphrase": conn.key_passphrase}
        secret = secrets_by_kind.get(kind) if kind is not None else None
        if kind is None or secret is None:
            return AskpassReply(action="terminal", reason="nothing configured answers this prompt")
        if (who, kind) in login.answered:
            log.info("askpass_asked_again", session=login.session_id, entry=conn.name, kind=kind)
            return AskpassReply(action="refuse", reason=f"the configured {kind} was not accepted")
        login.answered.add((who, kind))
        log.info("askpass_answered", session=login.session_id, entry=conn.name, kind=kind)
        return AskpassReply(action="answer", answer=secret.get_secret_value())


_FAILURE_HINTS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed", re.IGNORECASE),
        "ssh refused the server's host key. If the server was really re-keyed, remove the old key "
        "(ssh-keygen -R, with the host as known_hosts names it) and open again; do not turn off host "
        "key checking to get past this.",
    ),
    (
        re.compile(r"Permission denied|Too many authentication failures", re.IGNORECASE),
        "Authentication failed: check user, key_path, password or key_passphrase of the entry in "
        "config.yml (a configured secret is tried once, then ssh gives up).",
    ),
    (
        re.compile(r"Could not resolve hostname", re.IGNORECASE),
        "The host name does not resolve: check `host` (or the ~/.ssh/config alias) and DNS.",
    ),
    (
        re.compile(r"Connection refused", re.IGNORECASE),
        "Nothing accepts connections on that address and port: check `port` and that sshd runs there.",
    ),
    (
        re.compile(r"timed out|No route to host|Network is unreachable", re.IGNORECASE),
        "The host did not answer in time: check the address, the network path and proxy_jump.",
    ),
]


def failure_hint(ssh_said: str) -> str | None:
    """The next step for a login that ssh gave up on, judged from ssh's last words (None: unknown)."""
    for pattern, hint in _FAILURE_HINTS:
        if pattern.search(ssh_said):
            return hint
    return None


def _any_secret(conn: Connection, hops: dict[str, Connection]) -> bool:
    return conn.has_secret or any(h.has_secret for h in hops.values())
