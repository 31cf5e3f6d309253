"""A person beside the agent, per shell, through a real `sshkeep attach` tmux client in a terminal
of its own (and a `tmux attach` typed by hand): watching is read-only (keys typed while the
agent's command runs never reach it), a take-over waits for the agent's command to end, what the
person runs then is a command record of its own (source `person`), and a line the person left
half-typed is cleared before the agent types. The agent's replies never hold the person's text
or output."""

from __future__ import annotations

import asyncio

import pytest

from sshkeep.common.models.sessions import (
    CommandQuery,
    CommandSummary,
    OpenSessionRequest,
    SendCommandRequest,
)
from tests.instance import Instance, run_sshkeep
from tests.support import SHELLS, OuterTmux, attach_in, eventually, person_types


async def _client_on(instance: Instance, sid: str, present: bool = True) -> None:
    def on() -> bool:
        return (sid in instance.tmux("list-clients", "-F", "#{session_name}").stdout) == present

    await eventually(lambda: asyncio.to_thread(on), "the person's tmux client" + ("" if present else " gone"))


def _read_only(instance: Instance, sid: str) -> list[str]:
    """`client_readonly` of each person's tmux client on the session."""
    rows = instance.tmux("list-clients", "-F", "#{session_name} #{client_control_mode} #{client_readonly}")
    return [row.split()[2] for row in rows.stdout.splitlines() if row.split()[:2] == [sid, "0"]]


async def _records(instance: Instance, sid: str) -> list[CommandSummary]:
    async with instance.client() as c:
        return (await c.list_commands(sid)).commands


@pytest.mark.parametrize("shell", SHELLS)
async def test_person_typing_beside_the_agent(instance: Instance, outer: OuterTmux, shell: str) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        # A client attached by hand (the `attach` command replies print, without -r) watches too.
        raw = instance.paths.attach_command(sid)
        assert outer("new-session", "-d", "-s", "outer", "-x", "200", "-y", "50", raw).returncode == 0
        await _client_on(instance, sid)
        assert _read_only(instance, sid) == ["1"]
        await person_types(outer, "echo BY-HAND")
        assert "BY-HAND" not in (await c.get_snapshot(sid)).screen
        assert outer("kill-session", "-t", "outer").returncode == 0
        await _client_on(instance, sid, present=False)

        attach_in(outer, instance, sid)  # watching with sshkeep attach
        await _client_on(instance, sid)
        assert _read_only(instance, sid) == ["1"]

        # The person types while the agent's command runs: the keys never reach the terminal.
        r = await c.send_command(sid, SendCommandRequest(command="sleep 5; echo AGENT", timeout=0.5))
        assert r.status == "running", r
        await person_types(outer, "echo PERSON-WATCHING")
        # Taking over is refused while it runs: the person's typing would mix with its output.
        took = await asyncio.to_thread(run_sshkeep, "attach", sid, "--take", env=instance.env, timeout=30)
        assert took.returncode == 1 and "is running" in took.stderr, took
        done = await c.get_command(sid, r.command_id, CommandQuery(wait=20))
        assert (done.status, done.exit_code, done.output) == ("completed", 0, "AGENT"), done
        after = await c.send_command(sid, SendCommandRequest(command="echo after"))
        assert (after.status, after.exit_code, after.output) == ("completed", 0, "after"), after
        assert "PERSON-WATCHING" not in (await c.get_snapshot(sid)).screen

        # Now the person takes over, runs a command and leaves a second line half-typed.
        assert outer("kill-session", "-t", "outer").returncode == 0
        await _client_on(instance, sid, present=False)
        attach_in(outer, instance, sid, "--take")

        async def human() -> bool:
            return (await c.get_session(sid)).state == "human"

        await eventually(human, "the take-over")
        await person_types(outer, "echo PERSON-$((6*7))")

        async def person_done() -> bool:
            mine = [x for x in await _records(instance, sid) if x.source == "person"]
            return bool(mine) and mine[0].status == "completed"

        await eventually(person_done, "the person's command as a record")
        await person_types(outer, "echo HALF-TYPED", enter=False)

        async def half_shown() -> bool:
            return "HALF-TYPED" in (await c.get_snapshot(sid)).screen

        await eventually(half_shown, "the half-typed line in the session")
        assert _read_only(instance, sid) == ["0"]
        # Handed back from another terminal: the person's client, still attached, only watches.
        released = await asyncio.to_thread(run_sshkeep, "release", sid, env=instance.env, timeout=30)
        assert released.returncode == 0, released
        assert _read_only(instance, sid) == ["1"]

        async def ready() -> bool:
            return (await c.get_session(sid)).state == "ready"

        await eventually(ready, "the hand-back")
        # The half-typed line is cleared before the agent types: it never runs with the command.
        r = await c.send_command(sid, SendCommandRequest(command="echo ok"))
        assert (r.status, r.exit_code, r.output) == ("completed", 0, "ok"), r
        assert r.person_commands is not None
        assert [(x.command, x.exit_code) for x in r.person_commands] == [("echo PERSON-$((6*7))", 0)]
        person = r.person_commands[0]
        out = await c.get_command(sid, person.command_id)
        assert (out.source, out.output) == ("person", "PERSON-42"), out

        every = await _records(instance, sid)
        assert [(x.source, x.command) for x in every] == [
            ("agent", "sleep 5; echo AGENT"),
            ("agent", "echo after"),
            ("person", "echo PERSON-$((6*7))"),
            ("agent", "echo ok"),
        ], every
