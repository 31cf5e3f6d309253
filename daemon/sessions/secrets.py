"""Named secrets typed into a session without passing through the model.

A secret comes from config.yml (`secrets:` at the top level and per connection; a connection's
`password` is its secret `login`): a value, or a credential command whose stdout is the value
(run without a shell, with a timeout, its result kept in memory only for `cache_seconds`).

It is typed only while the terminal asks a secret question (password, passphrase, one-time code,
token, or a prompt the config marks), so it can never land on a visible command line. It is typed
through the tmux control client's stdin (`send-keys -l`), so it is in no process's argv or
environment; it is never logged (the audit entry holds its name, length, a SHA-256 prefix and who
answered). If the remote side echoes it anyway, it is overwritten in the session's raw log and
replaced in every rendering of the session's output, and the reply says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from sshkeep.common.config import LOGIN_SECRET, Connection, LoadedConfig, SecretSpec
from sshkeep.common.errors import (
    BadRequest,
    ConfigError,
    NoSecretQuestion,
    SecretNotFound,
    SecretUnavailable,
    SessionBusy,
    SessionDisconnected,
)
from sshkeep.common.keyrecord import HASH_PREFIX
from sshkeep.common.keyrecord import SECRET_QUESTION_KINDS as SECRET_KINDS
from sshkeep.common.models.sessions import CommandResult, Question
from sshkeep.daemon.sessions.session import QUIET_FOR_QUESTION, Session
from sshkeep.daemon.sessions.store import CommandRecord
from sshkeep.daemon.sessions.tmux import Tmux, quote

if TYPE_CHECKING:
    from sshkeep.daemon.sessions.commands import Commands

log = structlog.get_logger(__name__)

# How long answer_secret waits for a question to settle (output quiet) before refusing.
QUESTION_SETTLE = 3.0
MAX_STDERR = 500
SUDO_PROMPT = re.compile(r"^\[sudo\] password for (?P<user>[^:\s]+):$")
# The prompt is set explicitly, so a customised `passprompt` in sudoers still reads as this.
SUDO_VALIDATE = "sudo -v -p '[sudo] password for %p: '"


@dataclass(frozen=True)
class Typed:
    """What the audit log may say about a typed secret: never the value."""

    name: str | None
    length: int
    sha256: str
    answered_by: str

    def audit(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "length": self.length,
            "sha256_prefix": self.sha256,
            "answered_by": self.answered_by,
        }


def fingerprint(value: str) -> str:
    """The SHA-256 prefix the audit log keeps of a typed secret (as long as for secret-looking keys)."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_PREFIX]


def child_env(hidden: Iterable[str]) -> dict[str, str]:
    """The daemon's environment for a child process, without the variables secrets refer to."""
    drop = set(hidden) | {"TMUX"}
    return {k: v for k, v in os.environ.items() if k not in drop}


class SecretStore:
    """Looks secrets up by name for a connection, runs credential commands, caches in memory."""

    def __init__(self, config: Any) -> None:
        self.config = config  # a ConfigSource
        self._cache: dict[tuple[str, str, str], tuple[float, str]] = {}

    def _cfg(self) -> LoadedConfig:
        cfg: LoadedConfig = self.config.current()
        return cfg

    def connection(self, s: Session) -> Connection | None:
        if s.connection is None:
            return None
        try:
            return self._cfg().lookup(s.connection)
        except ConfigError:
            return None

    def specs(self, s: Session) -> dict[str, SecretSpec]:
        return self._cfg().secrets_for(self.connection(s))

    def names(self, s: Session) -> list[str]:
        return sorted(self.specs(s))

    def spec(self, s: Session, name: str) -> SecretSpec:
        specs = self.specs(s)
        spec = specs.get(name)
        if spec is None:
            known = ", ".join(sorted(specs)) or "none configured"
            raise SecretNotFound(
                f"no secret named {name!r} for session {s.id} (known: {known})",
                hint="Use one of the listed names, or ask your user to run "
                f"`sshkeep answer {s.id}` and type the answer themselves.",
            )
        return spec

    def fitting(self, s: Session, q: Question) -> str | None:
        """The configured secret that answers question `q`, if one does."""
        specs = self.specs(s)
        for name, spec in specs.items():
            if spec.matches(q.text):
                return name
        sudo = SUDO_PROMPT.match(q.text.strip())
        if sudo is not None:
            conn = self.connection(s)
            choice = conn.sudo if conn is not None else None
            if isinstance(choice, str):
                return choice if choice in specs else None
            same_user = conn is not None and conn.user in (None, sudo.group("user"))
            if choice is None and LOGIN_SECRET in specs and same_user:
                return LOGIN_SECRET
        return None

    def is_secret(self, s: Session, q: Question | None) -> bool:
        if q is None:
            return False
        return q.kind in SECRET_KINDS or any(spec.matches(q.text) for spec in self.specs(s).values())

    def advise(self, s: Session, q: Question) -> tuple[Question, str] | None:
        """For a secret question: the question naming the secret that fits, and the hint."""
        if not self.is_secret(s, q):
            return None
        return q.model_copy(update={"secret": self.fitting(s, q)}), self.hint(s, q)

    def hint(self, s: Session, q: Question) -> str:
        """The next step for a pending secret question (the agent must never see the answer)."""
        fit = self.fitting(s, q)
        if fit is not None:
            return (
                f"The terminal asks for a secret ({q.text!r}): answer_secret(session_id={s.id!r}, "
                f"name={fit!r}) types the configured secret {fit!r} without it passing through you."
            )
        names = self.names(s)
        text = (
            f"The terminal asks for a secret ({q.text!r}) and no configured secret is known to fit: ask "
            f"your user to run exactly `sshkeep answer {s.id}` in a terminal (it reads the answer "
            "without echo and types it in)"
        )
        if names:
            text += (
                f"; or, if one of the configured secrets ({', '.join(names)}) is the answer, "
                f"answer_secret(session_id={s.id!r}, name=...)"
            )
        return text + ". Never ask the user to tell you the secret itself."

    async def value(self, s: Session, name: str) -> str:
        """The secret's value: from config.yml, or by running its credential command."""
        spec = self.spec(s, name)
        if spec.value is not None:
            return spec.value.get_secret_value()
        key = (s.connection or "", name, spec.command or "")
        cached = self._cache.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        value = await self._run(name, spec)
        if spec.cache_seconds > 0:
            self._cache[key] = (time.monotonic() + spec.cache_seconds, value)
        return value

    async def _run(self, name: str, spec: SecretSpec) -> str:
        argv = spec.argv
        hidden = self._cfg().secret_vars
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=child_env(hidden),
                start_new_session=True,
            )
        except OSError as exc:
            raise SecretUnavailable(
                f"the credential command of secret {name!r} ({argv[0]}) cannot run: {exc.strerror or exc}"
            ) from exc
        try:
            out, err = await asyncio.wait_for(proc.communicate(), spec.timeout)
        except TimeoutError as exc:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise SecretUnavailable(
                f"the credential command of secret {name!r} ({argv[0]}) did not finish within "
                f"{spec.timeout:g}s",
                hint="Check that it does not wait for input (a locked store asks on a terminal it "
                "does not have), or raise the secret's `timeout`.",
            ) from exc
        stderr = err.decode(errors="replace").strip()[:MAX_STDERR]
        if proc.returncode != 0:
            raise SecretUnavailable(
                f"the credential command of secret {name!r} ({argv[0]}) exited with {proc.returncode}"
                + (f": {stderr}" if stderr else "")
            )
        text = out.decode(errors="replace")
        text = text[:-1] if text.endswith("\n") else text
        text = text[:-1] if text.endswith("\r") else text
        if not text:
            raise SecretUnavailable(f"the credential command of secret {name!r} ({argv[0]}) printed nothing")
        if any(c in text for c in "\r\n\x00"):
            raise SecretUnavailable(
                f"the credential command of secret {name!r} ({argv[0]}) printed more than one line",
                hint="Make it print only the secret (e.g. `pass show NAME` prints extra lines: use "
                "`pass show NAME | head -n1` in a small script, or a field option).",
            )
        return text


class Answers:
    """answer_secret (the agent, by name) and `sshkeep answer` (a person, by value or name).

    Built by the composition root from narrow dependencies: `lookup` (a session by id), the
    command runner, the tmux client, the take-over guard and the secret store."""

    def __init__(
        self,
        lookup: Callable[[str], Session],
        commands: Commands,
        tmux: Tmux,
        guard: Callable[[Session], None],
        store: SecretStore,
    ) -> None:
        self.lookup = lookup
        self.commands = commands
        self.tmux = tmux
        self.guard = guard
        self.store = store

    async def answer(
        self,
        sid: str,
        *,
        name: str | None = None,
        value: str | None = None,
        sudo: bool = False,
        timeout: float = 10.0,
        by: str = "agent",
    ) -> tuple[CommandResult, Typed | None]:
        s = self.lookup(sid)
        log.debug("answer_requested", session=sid, name=name, sudo=sudo, answered_by=by)
        if by == "agent":
            self.guard(s)
        if s.dead:
            raise SessionDisconnected(f"session {sid} is disconnected; nothing was typed")
        if name is not None:
            self.store.spec(s, name)  # an unknown name is refused before anything else
        if sudo:
            return await self._sudo(s, name, timeout, by)
        q, rec = await self._pending(s, timeout)
        if rec is None or q is None or not self.store.is_secret(s, q):
            raise NoSecretQuestion(_no_question(s, q, rec))
        if value is None:
            name, value = await self._secret_for(
                s, q, name, f"which secret answers {q.text!r}? none is known to fit"
            )
        typed = await self._type(s, rec, value, name, by, timeout)
        res = await self.commands._result(s, rec, first=True)
        return self._finish(s, res, typed, value), typed

    async def _secret_for(self, s: Session, q: Question, name: str | None, unknown: str) -> tuple[str, str]:
        """The secret that answers `q` (`name`, else the one configured to fit) and its value;
        BadRequest (`unknown`, with what would fit) when there is none."""
        name = name or self.store.fitting(s, q)
        if name is None:
            raise BadRequest(unknown, hint=self.store.hint(s, q))
        return name, await self.store.value(s, name)

    async def _pending(self, s: Session, timeout: float) -> tuple[Question | None, CommandRecord | None]:
        """The question the terminal asks now (waiting a moment for output to settle)."""
        deadline = time.monotonic() + min(max(timeout, 0.5), QUESTION_SETTLE)
        while True:
            quiet = s.quiet_for()
            if quiet >= QUIET_FOR_QUESTION:
                return await self.commands._question(s), s.current
            if time.monotonic() >= deadline:
                return None, s.current
            await asyncio.sleep(max(0.02, QUIET_FOR_QUESTION - quiet))

    async def _type(
        self, s: Session, rec: CommandRecord, value: str, name: str | None, by: str, timeout: float
    ) -> Typed:
        start = s.current_size()
        # Through the control client's stdin: never an argv. Never logged, not even at DEBUG.
        await self.tmux.command(
            f"send-keys -t {s.pane_id} -l -- {quote(value)} ; send-keys -t {s.pane_id} Enter"
        )
        s.last_growth = time.monotonic()  # the question just answered is not pending any more
        typed = Typed(name, len(value), fingerprint(value), by)
        log.info("secret_typed", session=s.id, command_id=rec.command_id, name=name, answered_by=by)
        await self.commands._wait_command(s, rec, timeout)
        await s.scan()
        self._scrub(s, value, name, start)
        return typed

    def _scrub(self, s: Session, value: str, name: str | None, start: int) -> bool:
        """If the remote side echoed the secret: overwrite it in the raw log, redact it everywhere."""
        needle = value.encode()
        end = s.current_size()
        data = s.read_log(start, end)
        found = [m.start() for m in re.finditer(re.escape(needle), data)]
        label = f"[secret {name or 'answer'} redacted]"
        if not found and not any(v == value for v, _ in s.redactions):
            return False
        if found:
            fd = os.open(s.log_path, os.O_WRONLY)
            try:
                for offset in found:
                    os.pwrite(fd, b"*" * len(needle), start + offset)
            finally:
                os.close(fd)
            log.warning("secret_echoed", session=s.id, name=name)
        if not any(v == value for v, _ in s.redactions):
            s.redactions.append((value, label))
        return bool(found)

    def _finish(self, s: Session, res: CommandResult, typed: Typed, value: str) -> CommandResult:
        echoed = any(v == value for v, _ in s.redactions)
        update: dict[str, Any] = {"secret_echoed": echoed}
        if echoed:
            note = (
                "The remote side echoed the secret (the prompt did not hide input): it is redacted "
                "from every reply of this session."
            )
            update["hint"] = f"{note} {res.hint}" if res.hint else note
        elif (
            res.status == "waiting_input"
            and res.question is not None
            and self.store.is_secret(s, res.question)
        ):
            update["hint"] = (
                "The terminal asks again right after the answer: it was probably not accepted. "
                + self.store.hint(s, res.question)
            )
        return res.model_copy(update=update)

    async def _sudo(
        self, s: Session, name: str | None, timeout: float, by: str
    ) -> tuple[CommandResult, Typed | None]:
        """Run `sudo -v` in the idle terminal and answer its password prompt with the secret."""
        if s.current is not None:
            raise SessionBusy(
                f"session {s.id} is running {s.current.command_id}; sudo is validated at an idle prompt"
            )
        res = await self.commands.send_command(s.id, SUDO_VALIDATE, min(timeout, 10.0))
        rec = s.commands.get(res.command_id)
        if res.status != "waiting_input" or rec is None:
            return res, None  # no password needed (cached, NOPASSWD), or sudo failed: say so as is
        q = res.question
        if q is None or not self.store.is_secret(s, q):
            return res, None
        name, value = await self._secret_for(
            s, q, name, f"sudo asks {q.text!r} and no configured secret is known to answer it"
        )
        typed = await self._type(s, rec, value, name, by, timeout)
        if rec.out_end is None and s.quiet_for() >= QUIET_FOR_QUESTION:
            q2 = await self.commands._question(s)
            if q2 is not None and self.store.is_secret(s, q2):
                # Asked again: the secret was wrong. Stop sudo rather than loop.
                await self.commands.interrupt(s.id)
        res = await self.commands._result(s, rec, first=True)
        res = self._finish(s, res, typed, value)
        if res.status == "completed" and res.exit_code == 0:
            res = res.model_copy(
                update={"hint": f"sudo is validated with secret {name!r}: run `sudo …` commands now."}
            )
        elif res.status == "interrupted":
            res = res.model_copy(
                update={"hint": f"sudo did not accept secret {name!r}; it was stopped (Ctrl-C)."}
            )
        return res, typed


def _no_question(s: Session, q: Question | None, rec: CommandRecord | None) -> str:
    if rec is None and q is not None and not s.integrated:
        return (
            f"session {s.id} asks {q.text!r} outside a command (at login); answer_secret types only "
            "into a command's question"
        )
    if rec is None:
        return f"session {s.id} is at its prompt: no question is pending, so no secret was typed"
    if q is None:
        return f"command {rec.command_id} of session {s.id} is not waiting for input; no secret was typed"
    return (
        f"command {rec.command_id} of session {s.id} asks {q.text!r} ({q.kind}), which is not a "
        "secret question; no secret was typed"
    )
