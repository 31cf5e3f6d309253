"""A person steps in: `sshkeep answer ID [--secret NAME]` and `sshkeep release ID`.

`answer` reads the answer without echo (getpass, on the controlling terminal) and has the daemon
type it into the session's pending secret question; `--secret NAME` types a configured secret
instead. The answer goes to the daemon over its private socket only: it is in no argv, no
environment, and neither the reply nor the audit log holds it. `release` hands a session taken
with `sshkeep attach --take` back to the agent and lists what the person ran.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from pydantic import SecretStr

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import BadRequest, SshkeepError
from sshkeep.common.keyrecord import SECRET_QUESTION_KINDS as SECRET_KINDS
from sshkeep.common.models.sessions import AnswerQuestionRequest, CommandResult, ControlResult
from sshkeep.common.paths import Paths, resolve_paths
from sshkeep.shim import render_text
from sshkeep.shim.autostart import ensure_daemon
from sshkeep.shim.cli.human import check_session_id


def _read_answer(prompt: str, from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    try:
        return getpass.getpass(prompt)
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)
        raise BadRequest("no answer was given; nothing was typed", hint="Run it again to answer.") from None


async def _answer(paths: Paths, sid: str, secret: str | None, from_stdin: bool, timeout: float) -> int:
    async with ApiClient(paths.socket, timeout=90) as client:
        await ensure_daemon(client, paths)
        if secret is not None:
            req = AnswerQuestionRequest(secret=secret, timeout=timeout)
        else:
            pending = await client.get_command(sid, "last")
            q = pending.question
            if pending.status != "waiting_input" or q is None:
                print(f"sshkeep answer: session {sid} asks nothing right now (status {pending.status})")
                return 1
            if q.kind not in SECRET_KINDS and q.secret is None:
                print(
                    f"sshkeep answer: {sid} asks {q.text!r} ({q.kind}), not for a secret; answer it in tmux"
                )
                return 1
            print(f"{sid} ({pending.command_id}: {pending.command[:60]}) asks: {q.text}", file=sys.stderr)
            value = _read_answer(f"answer for {sid} (not echoed): ", from_stdin)
            if not value:
                print("sshkeep answer: empty answer; nothing was typed", file=sys.stderr)
                return 1
            req = AnswerQuestionRequest(answer=SecretStr(value), timeout=timeout)
        res: CommandResult = await client.answer_question(sid, req)
    print(render_text.command(res))
    return 0


async def _release(paths: Paths, sid: str) -> int:
    async with ApiClient(paths.socket, timeout=30) as client:
        await ensure_daemon(client, paths)
        res = await client.release_control(sid)
    print(control_text(res))
    return 0


def control_text(res: ControlResult) -> str:
    if not res.changed:
        head = f"{res.session_id}: {res.state}"
    else:
        head = f"{res.session_id}: {'taken over' if res.taken else 'handed back'} ({res.state})"
    lines = [head]
    if not res.taken:
        lines += [render_text.summary_line(c) for c in res.person_commands]
    if res.hint:
        lines.append(res.hint)
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    try:
        sid = check_session_id(args.session_id)
        if args.cmd == "answer":
            return asyncio.run(_answer(paths, sid, args.secret, args.stdin, min(args.timeout, 50.0)))
        return asyncio.run(_release(paths, sid))
    except SshkeepError as err:
        print(f"sshkeep {args.cmd}: {err.message}\n{err.hint}", file=sys.stderr)
        return 1
