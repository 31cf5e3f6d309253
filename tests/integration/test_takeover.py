"""A person steps in: `sshkeep attach --take` through a real tmux client, and records of every
prompt cycle (agent, keys, person) with list_commands."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sshkeep.common.errors import HumanControl
from sshkeep.common.models.sessions import (
    AnswerSecretRequest,
    CommandListQuery,
    CommandQuery,
    CommandSummary,
    OpenSessionRequest,
    SendCommandRequest,
    SendKeysRequest,
    SnapshotQuery,
)
from tests.instance import Instance
from tests.support import SHELLS, OuterTmux, attach_in, eventually, person_types


async def commands_of(instance: Instance, sid: str) -> list[CommandSummary]:
    async with instance.client() as c:
        return (await c.list_commands(sid)).commands


async def test_take_over_refuses_the_agent_and_reports_what_the_person_ran(
    instance: Instance, outer: OuterTmux
) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
        before = await c.send_command(sid, SendCommandRequest(command="echo before-$((6*7))"))
        assert before.output == "before-42"

    attach_in(outer, instance, sid, "--take")

    async def human() -> bool:
        async with instance.client() as c:
            return (await c.get_session(sid)).state == "human"

    await eventually(human, "the session to be in state human")
    await eventually(lambda: asyncio.to_thread(lambda: "before-42" in outer.screen()), "the attached screen")

    async with instance.client() as c:
        # The agent's typing tools are refused while the person holds the terminal.
        calls = [
            c.send_command(sid, SendCommandRequest(command="echo agent")),
            c.send_keys(sid, SendKeysRequest(keys=["echo agent", "Enter"])),
            c.interrupt_command(sid),
            c.answer_secret(sid, AnswerSecretRequest(name="x")),
        ]
        for pending in calls:
            with pytest.raises(HumanControl) as refused:
                await pending
            assert refused.value.code == "human_control"
            assert "sshkeep release" in refused.value.hint
        # Reads still work.
        snap = await c.get_snapshot(sid, SnapshotQuery(lines=100))
        assert snap.state == "human" and "before-42" in snap.screen
        listed = await c.list_sessions()
        assert [s.state for s in listed.sessions if s.session_id == sid] == ["human"]

    await person_types(outer, "echo person-$((6*7))")
    await person_types(outer, "false")

    async def two_done() -> bool:
        mine = [x for x in await commands_of(instance, sid) if x.source == "person"]
        return len(mine) == 2 and all(x.status == "completed" for x in mine)

    await eventually(two_done, "the person's two commands as records")

    # The person detaches: attach hands the session back by itself.
    assert outer("send-keys", "-t", "outer", "C-b", "d").returncode == 0
    await eventually(lambda: asyncio.to_thread(lambda: "attach-exit=0" in outer.screen()), "attach to return")
    assert "handed" in outer.screen() and "2 command(s)" in outer.screen()

    async with instance.client() as c:
        info = await c.get_session(sid)
        assert info.state == "ready"
        res = await c.send_command(sid, SendCommandRequest(command="echo after"))
        assert res.output == "after"
        ran = res.person_commands
        assert ran is not None, res
        assert [(x.command, x.exit_code, x.source) for x in ran] == [
            ("echo person-$((6*7))", 0, "person"),
            ("false", 1, "person"),
        ]
        out = await c.get_command(sid, ran[0].command_id)
        assert out.output == "person-42" and out.source == "person"
        # Listed once: the reply after that does not repeat them.
        again = await c.send_command(sid, SendCommandRequest(command="true"))
        assert again.person_commands is None
        every = (await c.list_commands(sid)).commands
        assert [x.source for x in every] == ["agent", "person", "person", "agent", "agent"]
        since = await c.list_commands(sid, CommandListQuery(since=ran[1].command_id))
        assert [x.command for x in since.commands] == ["echo after", "true"]


async def test_release_from_another_terminal_and_a_holder_that_dies(
    instance: Instance, outer: OuterTmux, tmp_path: Path
) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
    attach_in(outer, instance, sid, "--take")

    async def state() -> str:
        async with instance.client() as c:
            return (await c.get_session(sid)).state

    async def is_human() -> bool:
        return await state() == "human"

    async def is_ready() -> bool:
        return await state() == "ready"

    await eventually(is_human, "state human")
    released = await asyncio.to_thread(instance.cli, "release", sid)
    assert released.returncode == 0, released.stderr
    assert "handed back" in released.stdout
    assert await state() == "ready"  # the agent may type although the person is still attached
    async with instance.client() as c:
        res = await c.send_command(sid, SendCommandRequest(command="echo agent-again"))
        assert res.output == "agent-again"

    # Take again from another terminal, which then goes away (the attach process dies with it).
    other = OuterTmux(tmp_path / "other.sock")
    try:
        attach_in(other, instance, sid, "--take")
        await eventually(is_human, "state human again")
        other("kill-server")
        await eventually(is_ready, "the daemon to release a session whose holder is gone")
    finally:
        other("kill-server")


async def test_plain_attach_does_not_take_control(instance: Instance, outer: OuterTmux) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host="bash"))).session_id
    attach_in(outer, instance, sid)
    await eventually(
        lambda: asyncio.to_thread(
            lambda: sid in instance.tmux("list-clients", "-F", "#{session_name}").stdout
        ),
        "the tmux client",
    )
    async with instance.client() as c:
        assert (await c.get_session(sid)).state == "ready"
        res = await c.send_command(sid, SendCommandRequest(command="echo watched"))
        assert res.output == "watched"
    # Watching is read-only (a person's keys never reach the pane: test_person_typing.py).
    flags = instance.tmux("list-clients", "-F", "#{session_name} #{client_readonly}").stdout.split("\n")
    assert f"{sid} 1" in flags, flags


@pytest.mark.parametrize("shell", SHELLS)
async def test_keys_typed_commands_are_records(instance: Instance, shell: str) -> None:
    async with instance.client() as c:
        sid = (await c.open_session(OpenSessionRequest(host=shell))).session_id
        await c.send_command(sid, SendCommandRequest(command="true"))
        await c.send_keys(sid, SendKeysRequest(keys=["echo keys-$((6*7))", "Enter"]))

        async def done() -> bool:
            return any(
                x.source == "keys" and x.status == "completed" for x in await commands_of(instance, sid)
            )

        await eventually(done, "the keys-typed command's record")
        await c.send_keys(sid, SendKeysRequest(keys=["sh -c 'exit 3'", "Enter"]))

        async def second() -> bool:
            return len([x for x in await commands_of(instance, sid) if x.source == "keys"]) == 2

        await eventually(second, "the second keys-typed command")
        await c.send_keys(sid, SendKeysRequest(keys=["Enter"]))  # an empty line runs nothing

        async def two_prompts() -> bool:  # the empty line's prompt is printed: nothing is pending
            lines = [x for x in (await c.get_snapshot(sid)).screen.splitlines() if x.strip()]
            return len(lines) >= 2 and lines[-1] == lines[-2] and "exit 3" in lines[-3]

        await eventually(two_prompts, "the prompt after the empty line")
        await c.send_command(sid, SendCommandRequest(command="true"))
        every = (await c.list_commands(sid)).commands
        assert [(x.source, x.command, x.exit_code) for x in every] == [
            ("agent", "true", 0),
            ("keys", "echo keys-$((6*7))", 0),
            ("keys", "sh -c 'exit 3'", 3),
            ("agent", "true", 0),
        ], every
        out = await c.get_command(sid, every[1].command_id)
        assert out.output == "keys-42", out
        # A running keys-typed command is the session's current one: send_command waits its turn.
        await c.send_keys(sid, SendKeysRequest(keys=["sleep 2; echo slept", "Enter"]))

        async def running() -> bool:
            return any(x.command.startswith("sleep 2") for x in await commands_of(instance, sid))

        await eventually(running, "the running keys command")
        last = await c.get_command(sid, "last")
        assert last.command.startswith("sleep 2")
        finished = await c.get_command(sid, last.command_id, CommandQuery(wait=20))
        assert (finished.status, finished.exit_code, finished.output) == ("completed", 0, "slept")
