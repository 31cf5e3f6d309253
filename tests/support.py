"""Helpers the tests share: config files, waiting, MCP tool calls, opening sessions, the test hosts.

One place for what several suites need, so a change to how a tool reply is checked or how long a
test waits is made once. A running instance itself (daemon, tmux server, CLI) is tests/instance.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp import Client

from sshkeep.common.client import ApiClient
from sshkeep.common.config import LoadedConfig, load_config
from sshkeep.common.models.files import ReadFileResult
from sshkeep.common.models.sessions import OpenSessionRequest
from sshkeep.shim.tools_files import render_read
from tests.sshd import SshServer

if TYPE_CHECKING:
    from tests.instance import Instance

# The login shells of the test sshd's users; every instance has a config entry named after each.
SHELLS = ("bash", "zsh", "dash", "ash")


def default_connections(sshd: SshServer) -> dict[str, dict[str, Any]]:
    """The config entries every test instance starts with: one per shell in SHELLS.

    `policy: admin`: these suites run rm and friends on purpose; the guard rails' own tests
    (test_policy.py) set operator and read_only explicitly."""
    conns: dict[str, dict[str, Any]] = {sh: {**sshd.connection(sh), "policy": "admin"} for sh in SHELLS}
    conns["bash"]["description"] = "test host, bash login shell"
    return conns


# --- config files ----------------------------------------------------------------------------------


def write_config(tmp_path: Path, text: str, mode: int = 0o600, name: str = "config.yml") -> Path:
    """Write `text` (dedented) as a config file in tmp_path, with file mode `mode`."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    path.chmod(mode)
    return path


def load_config_text(tmp_path: Path, text: str, mode: int = 0o600, **env: str) -> LoadedConfig:
    """Load `text` as config.yml the way the daemon does, with `env` as the environment."""
    return load_config(write_config(tmp_path, text, mode), env)


# --- waiting ----------------------------------------------------------------------------------------


def stop_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """End a process started with start_new_session and everything in its group: TERM, then KILL
    after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll `check()` until it holds; fail naming `what` after a generous timeout."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


async def eventually(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    """The async `wait_until`: await `check()` until it holds, without blocking the event loop."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.1)


async def wait_state(c: ApiClient, sid: str, state: str, timeout: float = 30.0) -> None:
    """Wait until the daemon reports session `sid` in `state` (e.g. "disconnected")."""

    async def reached() -> bool:
        return (await c.get_session(sid)).state == state

    await eventually(reached, f"session {sid} to be {state}", timeout)


# --- MCP tool calls ---------------------------------------------------------------------------------


def text_of(res: Any) -> str:
    """The text blocks of an MCP tool result, joined."""
    return " ".join(getattr(x, "text", "") for x in res.content)


async def call(c: Client, name: str, args: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    """Call a tool that must succeed; return its structured content, with a file's content that
    the reply sent only in its text (`in_text`) put back."""
    res = await c.call_tool(name, args or {}, **kw)
    assert not res.is_error, f"{name}({args}) failed: {text_of(res)[:2000]}"
    assert res.structured_content is not None, f"{name} returned no structured content: {text_of(res)}"
    out = dict(res.structured_content)
    if "content" in out.get("in_text", []):
        text = "".join(getattr(x, "text", "") for x in res.content)
        head = render_read(ReadFileResult.model_validate(out))
        assert text.startswith(head + "\n"), "the text does not carry the content after its head"
        out["content"] = text[len(head) + 1 :]
    return out


async def call_error(c: Client, name: str, args: dict[str, Any]) -> str:
    """Call a tool that must fail; return the error text."""
    res = await c.call_tool(name, args)
    assert res.is_error, f"{name}({args}) should fail, got {str(res.structured_content)[:500]}"
    return text_of(res)


# --- sessions ---------------------------------------------------------------------------------------


async def open_session(c: ApiClient, host: str = "bash") -> str:
    """Open a session over the HTTP API; it must come up ready. Returns its id."""
    info = await c.open_session(OpenSessionRequest(host=host))
    assert info.state == "ready", info
    return info.session_id


async def mcp_open_session(c: Client, host: str = "bash") -> str:
    """Open a session through the MCP tool; it must come up ready. Returns its id."""
    info = await call(c, "open_session", {"host": host})
    assert info["state"] == "ready", info
    return str(info["session_id"])


# --- a person at a terminal -------------------------------------------------------------------------


class OuterTmux:
    """A separate tmux server standing in for the person's own terminal."""

    def __init__(self, sock: Path) -> None:
        self.base = ["tmux", "-S", str(sock), "-f", "/dev/null"]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], capture_output=True, text=True, timeout=10)

    def screen(self) -> str:
        return self("capture-pane", "-p", "-t", "outer").stdout


def attach_in(outer: OuterTmux, instance: Instance, sid: str, *flags: str) -> None:
    """`sshkeep attach SID FLAGS` in the person's terminal: a real tmux client of the session."""
    env = f"SSHKEEP_HOME={shlex.quote(instance.env['SSHKEEP_HOME'])}"
    cli = f"{shlex.quote(sys.executable)} -m sshkeep attach {sid} {' '.join(flags)}"
    script = f"cd / && env {env} {cli}; echo attach-exit=$?; sleep 600"
    started = outer("new-session", "-d", "-s", "outer", "-x", "200", "-y", "50", script)
    assert started.returncode == 0, started.stderr


def _at_prompt(screen: str) -> bool:
    prompts = [x.rstrip() for x in screen.splitlines() if re.match(r"\S+@\S+:\S*\$", x)]
    return bool(prompts) and prompts[-1].endswith("$")


async def person_at_prompt(outer: OuterTmux) -> None:
    """Wait, as a person does before typing, until the person's screen ends at an empty shell
    prompt (`user@host:dir$`): keys typed sooner meet a shell that does not read them yet."""
    await eventually(lambda: asyncio.to_thread(lambda: _at_prompt(outer.screen())), "a prompt on the screen")


async def person_types(outer: OuterTmux, line: str, enter: bool = True) -> None:
    """Keys into the person's terminal, which the attached tmux client passes to the session;
    then Enter, unless not `enter` (a half-typed line)."""
    done = await asyncio.to_thread(outer, "send-keys", "-t", "outer", "-l", line)
    assert done.returncode == 0, done.stderr
    if enter:
        await asyncio.to_thread(outer, "send-keys", "-t", "outer", "Enter")
