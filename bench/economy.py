"""Agent economy benchmark: how many MCP calls and reply tokens everyday remote tasks cost.

Run as root on a machine with tmux and sshd (the same needs as the integration tests):

    python bench/economy.py [--quick] [--json FILE]

A scripted agent drives `sshkeep mcp` through the MCP SDK's client, one fresh agent per task (it
knows the host name, nothing else), and does each task the cheapest way the server's tools allow:
it looks at the tool list, so the same script measures an older sshkeep (no search tool, no
`host` argument, ...) and a newer one. Per task it counts tool calls and reply tokens (characters
of the text content plus the JSON of the structured content, divided by 4), and the largest
single reply. `--quick` shortens the long-running job; every task still runs.

Tasks: exit code of a failing command; follow a job that runs for a while; answer a password
prompt and a [y/N]; find one error line in 50,000; edit a config file; copy a 2 MB binary to the
local machine; recover from a dropped connection; leave `top`; leave `vim`; a build and a quick
check in parallel; recover from an unclosed quote; `git log` (a pager); checksum a remote file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mcp import Client  # noqa: E402

from tests.instance import Instance, new_instance  # noqa: E402
from tests.sshd import SshServer, environment_problem, start_sshd  # noqa: E402

HOST = "bash"


@dataclass
class Cost:
    calls: int = 0
    chars: int = 0
    biggest: int = 0
    errors: int = 0
    log: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.chars // 4


class Agent:
    """One scripted agent: an MCP client that counts what every call costs."""

    def __init__(self, client: Client, tools: dict[str, Any]) -> None:
        self.c = client
        self.tools = tools
        self.cost = Cost()

    def has(self, tool: str, param: str | None = None) -> bool:
        t = self.tools.get(tool)
        if t is None:
            return False
        return param is None or param in t.input_schema.get("properties", {})

    async def call(self, name: str, args: dict[str, Any]) -> tuple[dict[str, Any], str, bool]:
        res = await self.c.call_tool(name, args)
        text = "".join(getattr(x, "text", "") for x in res.content)
        sc = dict(res.structured_content) if res.structured_content is not None else {}
        size = len(text) + (len(json.dumps(sc)) if res.structured_content is not None else 0)
        self.cost.calls += 1
        self.cost.chars += size
        self.cost.biggest = max(self.cost.biggest, size)
        self.cost.log.append(f"{name} -> {size} chars{' ERROR' if res.is_error else ''}")
        if res.is_error:
            self.cost.errors += 1
        return sc, text, bool(res.is_error)

    # --- habits of the agent ----------------------------------------------------------------------

    async def where(self) -> dict[str, Any]:
        """How to address the host: by name when the tools take `host`, else open a session first."""
        if self.has("send_command", "host"):
            return {"host": HOST}
        info, text, err = await self.call("open_session", {"host": HOST})
        assert not err, text
        return {"session_id": info["session_id"]}

    async def run(self, at: dict[str, Any], command: str, timeout: float = 10) -> dict[str, Any]:
        res, text, err = await self.call("send_command", {**at, "command": command, "timeout": timeout})
        assert not err, text
        if "host" in at:
            at.pop("host")
            at["session_id"] = res["session_id"]
        return res

    async def keys(self, at: dict[str, Any], keys: list[str], expect_done: bool = True) -> dict[str, Any]:
        """Send keys; follow with get_command when send_keys does not return the command's result."""
        res, text, err = await self.call("send_keys", {"session_id": at["session_id"], "keys": keys})
        assert not err, text
        result = res.get("result")
        if isinstance(result, dict):
            return result
        cid = res.get("running_command_id")
        if cid is None or not expect_done:
            return res
        follow, text, err = await self.call(
            "get_command", {"session_id": at["session_id"], "command_id": cid, "wait": 10}
        )
        assert not err, text
        return follow


# --- the tasks ------------------------------------------------------------------------------------


async def task_exit_code(a: Agent, quick: bool) -> None:
    at = await a.where()
    r = await a.run(at, "ls /nonexistent-dir; echo listed")
    assert r["exit_code"] == 0 and "listed" in r["output"], r
    r = await a.run(at, "ls /nonexistent-dir")
    assert r["exit_code"] == 2, r


async def task_follow_job(a: Agent, quick: bool) -> None:
    secs = 6 if quick else 25
    at = await a.where()
    r = await a.run(at, f"for i in $(seq {secs}); do echo tick $i; sleep 1; done; echo finished", timeout=3)
    while r["status"] == "running":
        r, text, err = await a.call(
            "get_command", {"session_id": at["session_id"], "command_id": r["command_id"], "wait": 30}
        )
        assert not err, text
    assert r["status"] == "completed" and "finished" in r["output"], r


async def task_prompts(a: Agent, quick: bool) -> None:
    at = await a.where()
    script = (
        "read -r -s -p 'Password: ' pw; echo; read -r -p 'Apply changes? [y/N] ' ans; "
        'echo "pw=${#pw} ans=$ans"'
    )
    r = await a.run(at, script, timeout=5)
    assert r["status"] == "waiting_input", r
    if a.has("answer_secret"):
        # The password is configured (settings written by main()); the agent never sees it.
        r, text, err = await a.call("answer_secret", {"session_id": at["session_id"], "name": "app_pw"})
        assert not err, text
    else:
        r = await a.keys(at, ["hunter2", "Enter"])
    if r.get("status") != "waiting_input":
        r, text, err = await a.call(
            "get_command", {"session_id": at["session_id"], "command_id": "last", "wait": 5}
        )
    r = await a.keys(at, ["y", "Enter"])
    assert r.get("status") == "completed" and "pw=7 ans=y" in r.get("output", ""), r


async def task_find_error(a: Agent, quick: bool) -> None:
    at = await a.where()
    r = await a.run(at, "seq 1 50000 | sed 's/^31337$/ERROR: disk quota exceeded/'", timeout=20)
    assert r["status"] == "completed", r
    if a.has("search_output"):
        s, text, err = await a.call(
            "search_output",
            {"session_id": at["session_id"], "command_id": r["command_id"], "pattern": "ERROR", "context": 2},
        )
        assert not err and s["total_matches"] == 1, text
        return
    if "ERROR" in r["output"]:
        return
    offset = r.get("next_offset") or 0
    while True:
        page, text, err = await a.call(
            "get_command",
            {"session_id": at["session_id"], "command_id": r["command_id"], "offset": offset, "limit": 2000},
        )
        assert not err, text
        if "ERROR" in page["output"]:
            return
        if page.get("next_offset") is None:
            raise AssertionError("ERROR line not found")
        offset = page["next_offset"]


async def task_edit_config(a: Agent, quick: bool) -> None:
    at = await a.where()
    await a.run(at, "printf 'port=80\\nworkers=2\\nlog=info\\n' > /tmp/economy-app.conf")
    args = {**({"host": at["host"]} if "host" in at else {"session_id": at["session_id"]})}
    f, text, err = await a.call("read_remote_file", {**args, "remote_path": "/tmp/economy-app.conf"})
    assert not err, text
    content = f.get("content") or text.split("\n", 1)[1]
    new = content.replace("workers=2", "workers=8")
    w, text, err = await a.call(
        "write_remote_file",
        {**args, "remote_path": "/tmp/economy-app.conf", "content": new, "expected_sha256": f["sha256"]},
    )
    assert not err and w["size"] == len(new), text


async def task_copy_binary(a: Agent, quick: bool, local_dir: Path) -> None:
    at = await a.where()
    await a.run(at, "head -c 2097152 /dev/urandom > /tmp/economy-blob.bin && sha256sum /tmp/economy-blob.bin")
    args = {**({"host": at["host"]} if "host" in at else {"session_id": at["session_id"]})}
    if a.has("read_remote_file", "local_path"):
        f, text, err = await a.call(
            "read_remote_file",
            {**args, "remote_path": "/tmp/economy-blob.bin", "local_path": str(local_dir / "blob.bin")},
        )
        assert not err and f["size"] == 2097152, text
        return
    f, text, err = await a.call(
        "read_remote_file", {**args, "remote_path": "/tmp/economy-blob.bin", "encoding": "base64"}
    )
    assert not err and f["size"] == 2097152, text


async def task_reconnect(a: Agent, quick: bool) -> None:
    at = await a.where()
    await a.run(at, "cd /tmp && echo moved")
    await a.call("send_command", {**at, "command": "kill -9 $PPID", "timeout": 5})
    r, text, err = await a.call("send_command", {**at, "command": "pwd"})
    if err:
        _info, text, err = await a.call("reconnect_session", {"session_id": at["session_id"]})
        assert not err, text
        r, text, err = await a.call("send_command", {**at, "command": "pwd"})
        assert not err, text
        if r["output"].strip() != "/tmp":
            r, text, err = await a.call("send_command", {**at, "command": "cd /tmp && pwd"})
    assert r["output"].strip() == "/tmp", r


async def task_top(a: Agent, quick: bool) -> None:
    at = await a.where()
    r = await a.run(at, "top", timeout=3)
    # top redraws every few seconds: an older server reports it as still running.
    assert r["status"] in ("waiting_input", "running"), r
    r = await a.keys(at, ["q"])
    assert r.get("status") == "completed", r


async def task_vim(a: Agent, quick: bool) -> None:
    at = await a.where()
    r = await a.run(at, "vim /tmp/economy-notes.txt", timeout=3)
    assert r["status"] == "waiting_input", r
    r = await a.keys(at, ["Escape", ":q!", "Enter"])
    assert r.get("status") == "completed", r


async def task_parallel(a: Agent, quick: bool) -> None:
    at = await a.where()
    build = await a.run(at, "sleep 6; echo build ok", timeout=1)
    assert build["status"] == "running", build
    if a.has("send_command", "host"):
        other: dict[str, Any] = {"host": HOST}
    else:
        info, text, err = await a.call("open_session", {"host": HOST})
        assert not err, text
        other = {"session_id": info["session_id"]}
    check = await a.run(other, "uptime >/dev/null && echo check ok")
    assert "check ok" in check["output"], check
    assert other["session_id"] != at["session_id"]
    r, text, err = await a.call(
        "get_command", {"session_id": at["session_id"], "command_id": build["command_id"], "wait": 30}
    )
    assert not err and "build ok" in r["output"], text


async def task_unclosed_quote(a: Agent, quick: bool) -> None:
    at = await a.where()
    r = await a.run(at, "echo 'oops", timeout=3)
    assert r["status"] == "waiting_input", r
    r = await a.keys(at, ["C-c"], expect_done=False)
    if r.get("status") not in ("completed", "interrupted"):
        r, _text, _err = await a.call(
            "get_command", {"session_id": at["session_id"], "command_id": "last", "wait": 5}
        )
    r = await a.run(at, "echo 'fixed'")
    assert r["output"] == "fixed", r


async def task_git_log(a: Agent, quick: bool) -> None:
    at = await a.where()
    r = await a.run(
        at,
        "rm -rf /tmp/economy-repo && git init -q /tmp/economy-repo && cd /tmp/economy-repo && "
        "for i in $(seq 60); do "
        'git -c user.name=b -c user.email=b@x commit -q --allow-empty -m "change $i"; done'
        " && git log",
        timeout=20,
    )
    if r["status"] == "waiting_input":
        r = await a.keys(at, ["q"])
    assert r.get("status") == "completed", r


async def task_checksum(a: Agent, quick: bool) -> None:
    at = await a.where()
    await a.run(at, "head -c 1048576 /dev/zero > /tmp/economy-zero.bin")
    args = {**({"host": at["host"]} if "host" in at else {"session_id": at["session_id"]})}
    if a.has("read_remote_file", "metadata_only"):
        f, text, err = await a.call(
            "read_remote_file", {**args, "remote_path": "/tmp/economy-zero.bin", "metadata_only": True}
        )
        assert not err and f["sha256"], text
        return
    r, text, err = await a.call("exec_command", {**args, "command": "sha256sum /tmp/economy-zero.bin"})
    assert not err and "30e14955" in r["stdout"], text


TASKS: list[tuple[str, Callable[..., Awaitable[None]]]] = [
    ("exit code", task_exit_code),
    ("follow a job", task_follow_job),
    ("password + [y/N]", task_prompts),
    ("1 error in 50k lines", task_find_error),
    ("edit a config file", task_edit_config),
    ("copy a 2 MB binary", task_copy_binary),
    ("dropped connection", task_reconnect),
    ("leave top", task_top),
    ("leave vim", task_vim),
    ("build + check", task_parallel),
    ("unclosed quote", task_unclosed_quote),
    ("git log (pager)", task_git_log),
    ("checksum a file", task_checksum),
]


async def run_tasks(inst: Instance, quick: bool, only: str | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    local_dir = inst.paths.state_dir / "downloads"
    async with Client(inst.mcp_params()) as c:
        listing = await c.list_tools()
        tools = {t.name: t for t in listing.tools}
        static = sum(
            len(t.name) + len(t.description or "") + len(json.dumps(t.input_schema)) for t in listing.tools
        )
        out_static = sum(len(json.dumps(t.output_schema or {})) for t in listing.tools)
        rows.append(
            {"task": "(tool list)", "calls": 0, "tokens": static // 4, "biggest": out_static // 4, "ok": True}
        )
        for name, fn in TASKS:
            if only and only not in name:
                continue
            a = Agent(c, tools)
            started = time.monotonic()
            ok, note = True, ""
            try:
                if fn is task_copy_binary:
                    await fn(a, quick, local_dir)
                else:
                    await fn(a, quick)
            except Exception as exc:
                ok, note = False, f"{type(exc).__name__}: {str(exc)[:200]}"
            # Leave no session behind for the next agent (a fresh agent knows none).
            sessions = await c.call_tool("list_sessions", {})
            for s in (sessions.structured_content or {}).get("sessions", []):
                await c.call_tool("close_session", {"session_id": s["session_id"]})
            rows.append(
                {
                    "task": name,
                    "calls": a.cost.calls,
                    "tokens": a.cost.tokens,
                    "biggest": a.cost.biggest // 4,
                    "ok": ok,
                    "note": note,
                    "seconds": round(time.monotonic() - started, 1),
                    "log": a.cost.log,
                }
            )
            print(
                f"{name:22} calls={a.cost.calls:3} tokens={a.cost.tokens:8} biggest={a.cost.biggest // 4:8}"
                f" {'ok' if ok else 'FAILED ' + note}",
                file=sys.stderr,
                flush=True,
            )
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'task':24}{'calls':>6}{'tokens':>10}{'biggest':>10}  ok"]
    for r in rows:
        lines.append(
            f"{r['task']:24}{r['calls']:6}{r['tokens']:10}{r['biggest']:10}  {'yes' if r['ok'] else 'NO'}"
        )
    tasks = [r for r in rows if r["task"] != "(tool list)"]
    lines.append(
        f"{'total (tasks)':24}{sum(r['calls'] for r in tasks):6}{sum(r['tokens'] for r in tasks):10}"
        f"{max((r['biggest'] for r in tasks), default=0):10}"
    )
    small = [r for r in tasks if r["task"] not in ("1 error in 50k lines", "copy a 2 MB binary")]
    calls, tokens = sum(r["calls"] for r in small), sum(r["tokens"] for r in small)
    lines.append(f"{'total w/o big-data tasks':24}{calls:6}{tokens:10}")
    lines.append("(tool list row: tokens = names+descriptions+input schemas; biggest = output schemas)")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter long-running job")
    ap.add_argument("--json", type=Path, help="write the rows as JSON here")
    ap.add_argument("--only", help="run only tasks whose name contains this")
    args = ap.parse_args()
    problem = environment_problem()
    if problem:
        print(f"cannot run: {problem}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="sk-economy-"))
    sshd: SshServer = start_sshd(work / "sshd")
    inst = new_instance({"bash": dict(sshd.connection("bash"))})
    # A configured secret for the password task (servers that have answer_secret type it).
    config = inst.home / "config.yml"
    config.write_text(config.read_text() + "secrets:\n  app_pw: hunter2\n")
    try:
        inst.start()
        rows = asyncio.run(run_tasks(inst, args.quick, args.only))
    finally:
        inst.destroy()
        with contextlib.suppress(Exception):
            sshd.stop()
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
