"""Secrets the model never sees: answer_secret, `sshkeep answer`, sudo, and where a secret must not be.

Every test drives the real product (MCP over stdio, HTTP on the socket, the CLI in a pty) against
the real test sshd, and then looks for the secret everywhere it must not be: every file of the
instance, the daemon's log at DEBUG, every process's argv and environment while it is typed, the
tmux scrollback, and every MCP reply.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import secrets
import select
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from sshkeep.common.errors import NoSecretQuestion, SecretNotFound, SecretUnavailable
from sshkeep.common.keyrecord import HASH_PREFIX
from sshkeep.common.models.sessions import (
    AnswerSecretRequest,
    CommandQuery,
    OpenSessionRequest,
    SendCommandRequest,
    SendKeysRequest,
    SnapshotQuery,
)
from tests.instance import Instance, new_instance
from tests.sshd import SshServer
from tests.support import default_connections

TOKEN_VAR = "SSHKEEP_TEST_API_TOKEN"
READ_TOKEN = (
    "read -s -p 'API token: ' t; echo; sleep 1; "
    'echo "len=${#t} sum=$(printf %s "$t" | sha256sum | cut -c1-12)"'
)


def digest(value: str) -> str:
    import hashlib

    return hashlib.sha256(value.encode()).hexdigest()


class World:
    """The instance of this module and the secret values it was configured with."""

    def __init__(self, inst: Instance, values: dict[str, str], cred_dir: Path, sshd: SshServer) -> None:
        self.inst = inst
        self.values = values
        self.cred_dir = cred_dir
        self.sshd = sshd

    @property
    def runs_file(self) -> Path:
        return self.cred_dir / "runs"


@pytest.fixture(scope="module")
def world(sshd: SshServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    cred_dir = tmp_path_factory.mktemp("credentials")
    values = {
        "tok": "tok-" + secrets.token_urlsafe(18),
        "db": "db-" + secrets.token_urlsafe(18),
        "echoed": "echo-" + secrets.token_hex(10),
        "person": "person-" + secrets.token_urlsafe(12),
    }
    (cred_dir / "db.secret").write_text(values["db"] + "\n")
    (cred_dir / "db.secret").chmod(0o600)
    # A credential command as `pass show` would be: prints the secret; counts its runs.
    script = cred_dir / "cred.sh"
    script.write_text(f"#!/bin/sh\necho run >> {cred_dir / 'runs'}\ncat {cred_dir / 'db.secret'}\n")
    script.chmod(0o700)
    failing = cred_dir / "fail.sh"
    failing.write_text("#!/bin/sh\necho 'Error: prod/db is not in the password store.' >&2\nexit 3\n")
    failing.chmod(0o700)
    conns = default_connections(sshd)
    conns["sudo"] = dict(sshd.password_connection())
    conns["bash"]["secrets"] = {"echoed": values["echoed"]}
    inst = new_instance({})
    inst.connections = conns
    inst.extra_config = {
        "secrets": {
            "tok": "${" + TOKEN_VAR + "}",
            "db": {"command": f"{script} --field password", "timeout": 5, "cache_seconds": 60},
            "broken_store": {"command": str(failing)},
            "slow": {"command": "sleep 30", "timeout": 1},
            "vault": {"command": f"{script}", "prompt": "^Vault password:$"},
        }
    }
    inst.write_config()
    inst.daemon_env = {TOKEN_VAR: values["tok"]}
    inst.log_level = "DEBUG"
    try:
        inst.start()
        yield World(inst, values, cred_dir, sshd)
    finally:
        inst.destroy()


async def open_session(inst: Instance, host: str = "bash") -> str:
    async with inst.client() as c:
        info = await c.open_session(OpenSessionRequest(host=host))
        assert info.state == "ready", info
        return info.session_id


# --- looking for a secret everywhere -----------------------------------------------------------


class ProcScan:
    """Reads every process's argv and environment in a loop (while a secret is being typed)."""

    def __init__(self, needles: list[str], skip_environ: set[int]) -> None:
        self.needles = [n.encode() for n in needles]
        self.skip_environ = skip_environ | {os.getpid()}
        self.hits: list[str] = []
        self.passes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit() or int(entry.name) == os.getpid():
                    continue
                for what in ("cmdline", "environ"):
                    if what == "environ" and int(entry.name) in self.skip_environ:
                        continue
                    try:
                        data = Path(entry.path, what).read_bytes()
                    except OSError:
                        continue
                    for needle in self.needles:
                        if needle in data:
                            self.hits.append(f"/proc/{entry.name}/{what}: {data[:200]!r}")
            self.passes += 1

    def __enter__(self) -> ProcScan:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def files_holding(root: Path, needle: str, skip: set[Path]) -> list[str]:
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            if path in skip or not path.is_file():
                continue
            try:
                if needle.encode() in path.read_bytes():
                    found.append(str(path))
            except OSError:
                continue
    return found


def assert_nowhere(world: World, sid: str, value: str, replies: list[str]) -> None:
    inst = world.inst
    paths = inst.paths
    skip = {paths.config_file}  # where the user keeps it (a ${VAR} or command secret is not even there)
    for root in (inst.home, paths.runtime_dir):
        assert files_holding(root, value, skip) == [], root
    logs = [inst.home / "daemon.stderr", paths.daemon_log]
    daemon_log = "".join(p.read_text(errors="replace") for p in logs if p.exists())
    assert '"level": "debug"' in daemon_log  # the daemon logs at DEBUG, and still says nothing
    assert value not in daemon_log
    scrollback = inst.tmux("capture-pane", "-p", "-S", "-50000", "-t", f"={sid}:").stdout
    assert value not in scrollback
    for reply in replies:
        assert value not in reply


def audit_lines(inst: Instance, tool: str) -> list[dict[str, Any]]:
    lines = [json.loads(x) for x in inst.paths.audit_log.read_text().splitlines()]
    return [x for x in lines if x["tool"] == tool]


# --- the agent answers ---------------------------------------------------------------------------


async def test_api_token_through_mcp_appears_nowhere(world: World) -> None:
    """A `read -s -p 'API token: '` prompt answered with a ${VAR} secret, through the MCP client."""
    inst, value = world.inst, world.values["tok"]
    replies: list[str] = []

    async def call(c: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
        res = await c.call_tool(name, args)
        text = " ".join(getattr(x, "text", "") for x in res.content)
        replies.append(text + json.dumps(res.structured_content))
        assert not res.is_error, f"{name}: {text}"
        assert res.structured_content is not None
        return dict(res.structured_content)

    async with Client(inst.mcp_params()) as c:
        listing = await call(c, "list_available_configs", {})
        assert "tok" in listing["secrets"] and "db" in listing["secrets"]
        entry = next(e for e in listing["configs"] if e["name"] == "sudo")
        assert "login" in entry["secrets"]  # its password, offered as the secret `login`
        sid = (await call(c, "open_session", {"host": "bash"}))["session_id"]
        asked = await call(c, "send_command", {"session_id": sid, "command": READ_TOKEN})
        assert asked["status"] == "waiting_input", asked
        assert asked["question"]["kind"] == "secret" and asked["question"]["text"] == "API token:"
        # No configured secret is known to fit this prompt: ask the user to run exactly this.
        assert f"`sshkeep answer {sid}`" in asked["hint"]
        assert "answer_secret" in asked["hint"] and "tok" in asked["hint"]

        daemon = inst.daemon_pid()
        assert daemon is not None
        with ProcScan([value], skip_environ={daemon}) as scan:
            res = await call(c, "answer_secret", {"session_id": sid, "name": "tok"})
        assert scan.passes >= 2 and scan.hits == [], scan.hits
        assert res["status"] == "completed" and res["exit_code"] == 0, res
        # The prompt is the command's own output; the answer is not (read -s does not echo it).
        assert res["output"] == f"API token: \nlen={len(value)} sum={digest(value)[:12]}"
        assert res["secret_echoed"] is False
        await call(c, "get_snapshot", {"session_id": sid, "lines": 1000})
        await call(c, "get_command", {"session_id": sid, "command_id": res["command_id"]})
        await call(c, "list_commands", {"session_id": sid})

    typed = [x for x in audit_lines(inst, "answer_secret") if x.get("typed_secret")]
    assert typed[-1]["typed_secret"] == {
        "name": "tok",
        "length": len(value),
        "sha256_prefix": digest(value)[:HASH_PREFIX],
        "answered_by": "agent",
    }
    assert_nowhere(world, sid, value, replies)
    # The daemon's children never get the variable a secret names (the tmux server, so no pane).
    tmux_pid = int(inst.tmux("display-message", "-p", "#{pid}").stdout.strip())
    environ = await asyncio.to_thread(Path(f"/proc/{tmux_pid}/environ").read_bytes)
    assert TOKEN_VAR.encode() not in environ


async def test_credential_command_cached_and_its_failures(world: World) -> None:
    inst = world.inst
    sid = await open_session(inst)
    world.runs_file.unlink(missing_ok=True)
    async with inst.client() as c:
        for _ in range(2):
            asked = await c.send_command(sid, SendCommandRequest(command=READ_TOKEN))
            assert asked.status == "waiting_input", asked
            with ProcScan([world.values["db"]], skip_environ=set()) as scan:
                res = await c.answer_secret(sid, AnswerSecretRequest(name="db"))
            assert scan.hits == [], scan.hits
            expect = f"len={len(world.values['db'])} sum={digest(world.values['db'])[:12]}"
            assert res.output.splitlines()[-1] == expect
        assert world.runs_file.read_text().count("run") == 1  # cache_seconds: 60

        asked = await c.send_command(sid, SendCommandRequest(command=READ_TOKEN))
        assert asked.status == "waiting_input"
        with pytest.raises(SecretUnavailable) as failed:
            await c.answer_secret(sid, AnswerSecretRequest(name="broken_store"))
        assert "exited with 3" in failed.value.message
        assert "prod/db is not in the password store" in failed.value.message  # its stderr
        with pytest.raises(SecretUnavailable) as slow:
            await c.answer_secret(sid, AnswerSecretRequest(name="slow"))
        assert "did not finish within 1s" in slow.value.message
        # Nothing was typed: the question is still there, and a working secret still answers it.
        res = await c.answer_secret(sid, AnswerSecretRequest(name="db"))
        assert res.status == "completed" and res.exit_code == 0
    assert_nowhere(world, sid, world.values["db"], [res.model_dump_json()])


async def test_refusals_never_type_and_never_tell(world: World) -> None:
    inst = world.inst
    sid = await open_session(inst)
    async with inst.client() as c:
        # At the prompt: no question, so the secret would land on the command line. Refused.
        with pytest.raises(NoSecretQuestion) as idle:
            await c.answer_secret(sid, AnswerSecretRequest(name="tok"))
        assert "no question is pending" in idle.value.message
        # A running command that asks nothing.
        await c.send_command(sid, SendCommandRequest(command="sleep 3", timeout=0))
        with pytest.raises(NoSecretQuestion) as running:
            await c.answer_secret(sid, AnswerSecretRequest(name="tok"))
        assert "not waiting for input" in running.value.message
        await c.get_command(sid, "last", CommandQuery(wait=10))
        # A question that is not secret (y/N): refused as well.
        await c.send_command(sid, SendCommandRequest(command="read -p 'Continue? [y/N] ' a; echo a=$a"))
        with pytest.raises(NoSecretQuestion) as confirm:
            await c.answer_secret(sid, AnswerSecretRequest(name="tok"))
        assert "not a secret question" in confirm.value.message
        await c.send_keys(sid, SendKeysRequest(keys=["n", "Enter"]))
        assert (await c.get_command(sid, "last", CommandQuery(wait=20))).output.endswith("a=n")
        # An unknown name: the error lists the names that exist, never a value.
        await c.send_command(sid, SendCommandRequest(command=READ_TOKEN))
        with pytest.raises(SecretNotFound) as unknown:
            await c.answer_secret(sid, AnswerSecretRequest(name="nope"))
        assert "no secret named 'nope'" in unknown.value.message
        for name in ("tok", "db", "echoed", "vault"):
            assert name in unknown.value.message
        for value in world.values.values():
            assert value not in unknown.value.message + unknown.value.hint
        # Nothing reached the terminal: the answer still goes to the same question.
        res = await c.answer_secret(sid, AnswerSecretRequest(name="tok"))
        assert res.status == "completed"
        assert res.output.splitlines()[-1].startswith(f"len={len(world.values['tok'])} ")
        history = await c.send_command(sid, SendCommandRequest(command="history 20"))
        assert world.values["tok"] not in history.output
    assert_nowhere(world, sid, world.values["tok"], [])


async def test_a_prompt_the_config_marks_and_an_echo(world: World) -> None:
    inst = world.inst
    sid = await open_session(inst)
    async with inst.client() as c:
        # `Vault password:` is configured as the prompt of secret `vault`: the hint names it.
        asked = await c.send_command(
            sid, SendCommandRequest(command="read -s -p 'Vault password:' v; echo; echo n=${#v}")
        )
        assert asked.question is not None and asked.question.secret == "vault", asked
        assert "name='vault'" in (asked.hint or "")
        res = await c.answer_secret(sid, AnswerSecretRequest())  # no name: the one that fits
        assert res.output.splitlines()[-1] == f"n={len(world.values['db'])}"

        # A prompt that does not hide input: the terminal echoes the secret.
        value = world.values["echoed"]
        asked = await c.send_command(
            sid, SendCommandRequest(command="printf 'Secret: '; read s; echo got=$s")
        )
        assert asked.question is not None and asked.question.kind == "secret", asked
        res = await c.answer_secret(sid, AnswerSecretRequest(name="echoed"))
        assert res.status == "completed" and res.secret_echoed is True, res
        assert "echoed" in (res.hint or "")
        # Overwritten in the raw log at once, so the reply's output shows the same number of stars.
        assert value not in res.output and "got=" + "*" * len(value) in res.output
        snap = await c.get_snapshot(sid, SnapshotQuery(lines=200))
        assert value not in snap.screen and "[secret echoed redacted]" in snap.screen
        again = await c.get_command(sid, res.command_id)
        assert value not in again.model_dump_json()
    # The raw log was overwritten where the secret was echoed; the logs CLI shows no trace of it.
    log = (inst.paths.logs_dir / f"{sid}.log").read_bytes()
    assert value.encode() not in log
    assert value not in inst.cli("logs", sid).stdout


async def test_sudo_prompt_and_validation(world: World) -> None:
    """A real sudo (the password user's rule asks its password): answered by the secret `login`."""
    inst, password = world.inst, world.sshd.password
    sid = await open_session(inst, "sudo")
    async with inst.client() as c:
        asked = await c.send_command(sid, SendCommandRequest(command="sudo -k; sudo /usr/bin/id -u"))
        assert asked.status == "waiting_input", asked
        assert asked.question is not None and asked.question.secret == "login", asked
        res = await c.answer_secret(sid, AnswerSecretRequest(name="login"))
        assert (res.status, res.exit_code, res.output.splitlines()[-1]) == ("completed", 0, "0"), res

        # Validation first: the agent's own command line never holds the password.
        await c.send_command(sid, SendCommandRequest(command="sudo -k"))
        daemon = inst.daemon_pid()
        with ProcScan([password], skip_environ={daemon or 0}) as scan:
            valid = await c.answer_secret(sid, AnswerSecretRequest(sudo=True))
        assert scan.hits == [], scan.hits
        assert (valid.status, valid.exit_code) == ("completed", 0), valid
        assert "validated" in (valid.hint or "")
        ran = await c.send_command(sid, SendCommandRequest(command="sudo -n /usr/bin/id -u"))
        assert (ran.exit_code, ran.output) == (0, "0"), ran
        # Already validated: nothing to answer, and nothing is typed.
        again = await c.answer_secret(sid, AnswerSecretRequest(sudo=True))
        assert (again.status, again.exit_code) == ("completed", 0)
    typed = [x["typed_secret"] for x in audit_lines(inst, "answer_secret") if x.get("typed_secret")]
    assert {"name": "login", "length": len(password), "answered_by": "agent"}.items() <= typed[-1].items()
    assert_nowhere(world, sid, password, [res.model_dump_json(), valid.model_dump_json()])


# --- a person answers ----------------------------------------------------------------------------


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def pty_read_until(fd: int, wanted: bytes, seen: bytearray, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} in {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            assert chunk, f"pty closed before {wanted!r}: {bytes(seen)!r}"
            seen += chunk


def person_answers_in_a_pty(inst: Instance, sid: str, value: str) -> bytes:
    """Run `sshkeep answer ID` on a terminal of its own and type `value` when it asks."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sshkeep", "answer", sid],
        stdin=slave, stdout=slave, stderr=slave, env=inst.env, start_new_session=True,
        preexec_fn=_controlling_tty, close_fds=True,
    )  # fmt: skip
    os.close(slave)
    seen = bytearray()
    try:
        pty_read_until(master, b"(not echoed): ", seen)
        assert b"asks: Passcode:" in seen
        os.write(master, value.encode() + b"\r")  # what the keyboard sends: Enter is CR
        pty_read_until(master, b"completed", seen)
        assert proc.wait(60) == 0
        return bytes(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)


async def test_sshkeep_answer_in_a_terminal(world: World) -> None:
    """A person runs `sshkeep answer ID` in their terminal (a real pty) and types the answer."""
    inst, value = world.inst, world.values["person"]
    sid = await open_session(inst)
    async with inst.client() as c:
        asked = await c.send_command(
            sid, SendCommandRequest(command="read -s -p 'Passcode: ' p; echo; echo \"pc=${#p}:${p:0:7}\"")
        )
        assert asked.status == "waiting_input" and asked.question is not None
        assert asked.question.kind == "otp"
        assert f"`sshkeep answer {sid}`" in (asked.hint or "")

    with_rest = await asyncio.to_thread(person_answers_in_a_pty, inst, sid, value)
    assert value.encode() not in with_rest  # getpass: not echoed on the person's terminal either
    assert f"pc={len(value)}:{value[:7]}".encode() in with_rest  # the command's result is shown
    typed = [x["typed_secret"] for x in audit_lines(inst, "answer_question") if x.get("typed_secret")]
    assert typed[-1] == {
        "name": None,
        "length": len(value),
        "sha256_prefix": digest(value)[:HASH_PREFIX],
        "answered_by": "person",
    }
    assert all(x["params"] == "<a secret answer: never logged>" for x in audit_lines(inst, "answer_question"))
    # A configured secret, by name, from the CLI.
    async with inst.client() as c:
        await c.send_command(sid, SendCommandRequest(command=READ_TOKEN))
    done = inst.cli("answer", sid, "--secret", "tok")
    assert done.returncode == 0, done.stderr
    assert f"len={len(world.values['tok'])}" in done.stdout
    nothing = inst.cli("answer", sid)
    assert nothing.returncode == 1 and "asks nothing right now" in nothing.stdout
    assert_nowhere(world, sid, value, [with_rest.decode(errors="replace")])
