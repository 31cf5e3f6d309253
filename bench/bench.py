"""sshkeep benchmark: one run on loopback, one table of medians (and p95), ratios to baselines.

Run as root on a machine with tmux and sshd (the same needs as the integration tests):

    python bench/bench.py [--quick] [--sessions N] [--json FILE]

It starts a real sshd on 127.0.0.1 (tests/sshd.py) and an sshkeep instance with its own
SSHKEEP_HOME (tests/instance.py), measures, and removes everything it started. Rows:

- raw floor: a bare tmux pane running `ssh` to the same sshd, no daemon; type `echo X<n>` and wait
  until `X<n>` shows in the pipe-pane log (inotify). Once with one `tmux send-keys` process per
  call (the floor of the target), once through a persistent `tmux -C` control client (what the
  daemon does).
- the bare pty floor (`ssh -tt`, logged in, no tmux) and mcp-ssh-gateway (the peer, from PyPI in a
  throwaway venv) echoing through the same MCP client against the same sshd.
- `echo` via HTTP (ApiClient) and via MCP (`mcp.Client` over stdio against `sshkeep mcp`), with
  ratios to both floors; measured interleaved with the floors, round by round, so background
  noise hits every row alike. Targets: MCP <= 1.5x mcp-ssh-gateway, HTTP <= 2x the control floor.
- round trips without ssh work (HTTP health/list, MCP list_sessions, a no-op MCP server: the SDK's
  own floor), to show where time goes outside the terminal.
- open_session, a 100k-line command and paging all of it, exec_command and file read/write against
  a fresh `ssh host ...`, N concurrent sessions (latency, throughput, CPU), daemon and tmux RSS.

A peer that cannot be installed is reported as a skipped row with a note, never as a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import ctypes.util
import json
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mcp import Client, StdioServerParameters  # noqa: E402
from peers import GatewayEcho, bare_pty, gateway_params, install_gateway  # noqa: E402

from sshkeep.common.errors import SshkeepError  # noqa: E402
from sshkeep.common.models.files import ReadFileRequest, WriteFileRequest  # noqa: E402
from sshkeep.common.models.jobs import ReadySpec, StartJobRequest  # noqa: E402
from sshkeep.common.models.sessions import (  # noqa: E402
    CommandQuery,
    OpenSessionRequest,
    SendCommandRequest,
    WaitForRequest,
)
from tests.instance import Instance, new_instance  # noqa: E402
from tests.sshd import SshServer, environment_problem, start_sshd  # noqa: E402

READ_FILE_LINES = 200_000  # `seq 1 200000` is 1,288,895 bytes: the 1.3 MB read
WRITE_BYTES = 1024 * 1024


# --- results --------------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation; the median for q=0.5."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


@dataclass
class Row:
    name: str
    samples: list[float] = field(default_factory=list)  # milliseconds, or the unit below
    unit: str = "ms"
    p95: bool = False
    note: str = ""
    skipped: bool = False
    value: float | None = None  # a single number instead of samples (RSS, throughput)

    @property
    def median(self) -> float | None:
        if self.value is not None:
            return self.value
        return statistics.median(self.samples) if self.samples else None


@dataclass
class Table:
    rows: list[Row] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def get(self, name: str) -> Row | None:
        return next((r for r in self.rows if r.name == name), None)

    def skip(self, name: str, note: str) -> None:
        self.rows.append(Row(name, skipped=True, note=note))

    def render(self) -> str:
        head = ("measurement", "median", "p95", "n", "notes")
        lines: list[tuple[str, ...]] = [head]
        for r in self.rows:
            if r.skipped:
                lines.append((r.name, "skipped", "", "", r.note))
                continue
            med = r.median
            p95 = f"{pct(r.samples, 0.95):.1f}" if r.p95 and len(r.samples) >= 5 else ""
            n = str(len(r.samples)) if r.samples else ""
            lines.append((r.name, f"{med:.1f} {r.unit}" if med is not None else "-", p95, n, r.note))
        widths = [max(len(line[i]) for line in lines) for i in range(4)]
        out = []
        for i, line in enumerate(lines):
            cells = [
                line[0].ljust(widths[0]),
                *(c.rjust(w) for c, w in zip(line[1:4], widths[1:], strict=True)),
            ]
            out.append("  ".join([*cells, line[4]]).rstrip())
            if i == 0:
                out.append("  ".join("-" * w for w in widths) + "  -----")
        return "\n".join(out)

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {
                "name": r.name,
                "unit": r.unit,
                "median": r.median,
                "p95": pct(r.samples, 0.95) if r.samples else None,
                "n": len(r.samples),
                "note": r.note,
                "skipped": r.skipped,
            }
            for r in self.rows
        ]


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --- the raw floor: tmux + pipe-pane, no daemon ---------------------------------------------------

_IN_MODIFY = 0x00000002
_IN_NONBLOCK = 0o4000
_IN_CLOEXEC = 0o2000000


class LogTail:
    """New bytes of one growing file; `wait_for` blocks on inotify until a needle shows up."""

    def __init__(self, path: Path) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._ino = int(libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC))
        if self._ino < 0 or libc.inotify_add_watch(self._ino, os.fsencode(path), _IN_MODIFY) < 0:
            raise OSError(ctypes.get_errno(), f"inotify on {path} failed")
        self._fd = os.open(path, os.O_RDONLY)
        self._pos = os.fstat(self._fd).st_size
        self._buf = bytearray()

    def mark(self) -> None:
        """Forget everything written so far."""
        self._pos = os.fstat(self._fd).st_size
        self._buf.clear()

    def wait_for(self, needle: re.Pattern[bytes], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            chunk = os.pread(self._fd, 1 << 20, self._pos)
            if chunk:
                self._pos += len(chunk)
                self._buf += chunk
                if needle.search(self._buf):
                    return True
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self._ino], [], [], left)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._ino, 65536)

    def close(self) -> None:
        os.close(self._fd)
        os.close(self._ino)


class RawFloor:
    """A private tmux server with one pane running ssh, driven without any daemon."""

    def __init__(self, sshd: SshServer, workdir: Path) -> None:
        self.workdir = workdir
        self.sock = workdir / "raw-tmux.sock"
        self.log_path = workdir / "raw-pane.log"
        self.log_path.touch(mode=0o600)
        conn = sshd.connection("bash")
        options = [f"-o{k}={v}" for k, v in sshd.ssh_options().items()]
        self.ssh_argv = [
            "ssh", "-l", str(conn["user"]), "-p", str(conn["port"]), "-i", str(conn["key_path"]),
            *options, str(conn["host"]),
        ]  # fmt: skip
        self.pane = ""
        self.tail: LogTail | None = None
        self.control: subprocess.Popen[bytes] | None = None
        self._drain: threading.Thread | None = None
        self.n = 0

    def tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-S", str(self.sock), "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {args[0]} failed: {done.stderr.strip()}")
        return done.stdout

    def start(self) -> None:
        self.tmux("new-session", "-d", "-s", "ctl", "-x", "80", "-y", "24", "tail -f /dev/null")
        out = self.tmux(
            "new-session", "-d", "-s", "raw", "-x", "200", "-y", "50", "-P", "-F", "#{pane_id}",
            "--", *self.ssh_argv,
        )  # fmt: skip
        self.pane = out.strip()
        self.tmux("pipe-pane", "-O", "-t", self.pane, f"exec cat >> {self.log_path}")
        self.tail = LogTail(self.log_path)
        # The login is done once a typed command echoes back.
        for _ in range(3):
            if self._type_and_wait(self._spawn_send, timeout=20) is not None:
                break
        else:
            raise RuntimeError(f"raw ssh pane never answered:\n{self.log_path.read_text(errors='replace')}")
        self.control = subprocess.Popen(
            ["tmux", "-S", str(self.sock), "-f", "/dev/null", "-C", "attach-session", "-t", "ctl"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        stdout = self.control.stdout
        assert stdout is not None
        # Replies and %output notifications must be read, or the control client blocks.
        self._drain = threading.Thread(target=lambda: shutil.copyfileobj(stdout, _Null()), daemon=True)
        self._drain.start()
        if self._type_and_wait(self._control_send, timeout=20) is None:
            raise RuntimeError("raw control-mode client did not type into the pane")

    def _spawn_send(self, text: str) -> Callable[[], object]:
        proc = subprocess.Popen(
            ["tmux", "-S", str(self.sock), "send-keys", "-t", self.pane, "-l", "--", text,
             ";", "send-keys", "-t", self.pane, "Enter"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return lambda: proc.wait(10)  # reap it, outside the timing

    def _control_send(self, text: str) -> Callable[[], object]:
        assert self.control is not None and self.control.stdin is not None
        line = f"send-keys -t {self.pane} -l -- '{text}' ; send-keys -t {self.pane} Enter\n"
        self.control.stdin.write(line.encode())
        self.control.stdin.flush()
        return lambda: None

    def _type_and_wait(
        self, send: Callable[[str], Callable[[], object]], timeout: float = 10
    ) -> float | None:
        assert self.tail is not None
        self.n += 1
        marker = f"X{self.n}"
        self.tail.mark()
        t0 = time.perf_counter()
        finish = send(f"echo {marker}")
        # The echoed input reads "echo X<n>"; the output line starts after \r or \n (bash may put
        # a bracketed-paste toggle and a \r before it).
        seen = self.tail.wait_for(re.compile(rb"[\r\n]X%d\r\n" % self.n), timeout)
        elapsed = (time.perf_counter() - t0) * 1000
        finish()
        return elapsed if seen else None

    def spawn_once(self) -> float | None:
        return self._type_and_wait(self._spawn_send)

    def control_once(self) -> float | None:
        return self._type_and_wait(self._control_send)

    def stop(self) -> None:
        if self.control is not None:
            with contextlib.suppress(OSError):
                assert self.control.stdin is not None
                self.control.stdin.close()
            try:
                self.control.wait(3)
            except subprocess.TimeoutExpired:
                self.control.kill()
                self.control.wait()
        with contextlib.suppress(Exception):
            self.tmux("kill-server", check=False)
        if self.tail is not None:
            self.tail.close()


class _Null:
    def write(self, data: bytes) -> int:
        return len(data)


# --- helpers --------------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` so far (Linux /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """Seconds of CPU time all cores spent busy so far (Linux /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    ticks = [int(x) for x in first[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


async def timed(fn: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = await fn()
    return (time.perf_counter() - t0) * 1000, out


def structured(res: Any) -> dict[str, Any]:
    """The structured content of a CallToolResult; raise if the tool failed."""
    if res.is_error:
        text = " ".join(getattr(c, "text", "") for c in res.content)
        raise RuntimeError(f"tool error: {text}")
    data = res.structured_content
    if not isinstance(data, dict):
        raise RuntimeError(f"tool returned no structured content: {res}")
    return data


def mcp_params(inst: Instance) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable, args=["-m", "sshkeep", "--log-level", "WARNING", "mcp"], env=inst.env
    )


def ssh_base(sshd: SshServer) -> list[str]:
    conn = sshd.connection("bash")
    options = [f"-o{k}={v}" for k, v in sshd.ssh_options().items()]
    return [
        "ssh",
        "-T",
        "-l",
        str(conn["user"]),
        "-p",
        str(conn["port"]),
        "-i",
        str(conn["key_path"]),
        *options,
    ]


def ssh_run(sshd: SshServer, remote: str, stdin: bytes | None = None) -> tuple[float, bytes]:
    """A fresh `ssh host <remote>` (new connection, full handshake): time and stdout."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [*ssh_base(sshd), sshd.host, remote],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        check=False,
    )
    ms = (time.perf_counter() - t0) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"ssh {remote!r} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    return ms, done.stdout


NOOP_SERVER = """\
from typing import Annotated

from mcp.server import MCPServer
from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel


class Echo(BaseModel):
    x: str


server = MCPServer("noop")


@server.tool()
async def noop(x: str) -> Annotated[CallToolResult, Echo]:
    return CallToolResult(content=[TextContent(type="text", text=x)], structured_content={"x": x})


server.run("stdio")
"""


# --- the benchmark --------------------------------------------------------------------------------


@dataclass
class Plan:
    echo_rounds: int
    opens: int
    big_runs: int
    file_runs: int
    sessions: int
    commands_per_session: int


class Bench:
    def __init__(self, plan: Plan, sshd: SshServer, inst: Instance, raw: RawFloor) -> None:
        self.plan = plan
        self.sshd = sshd
        self.inst = inst
        self.raw = raw
        self.table = Table()
        self.api = inst.client()
        self.sid = ""

    async def run(self) -> Table:
        try:
            health = await self.api.health()
            self.daemon_pid = health.pid
            rss0 = rss_kb(health.pid)
            info = await self.api.open_session(OpenSessionRequest(host="bash"))
            if info.state != "ready":
                raise RuntimeError(f"bench session not ready: {info}")
            self.sid = info.session_id
            async with contextlib.AsyncExitStack() as stack:
                mcp = await stack.enter_async_context(Client(mcp_params(self.inst), read_timeout_seconds=120))
                gateway = await self.start_gateway(stack)
                pty = stack.enter_context(bare_pty(self.sshd, [a for a in ssh_base(self.sshd) if a != "-T"]))
                await self.echo_rounds(mcp, gateway, pty)
                await self.overheads(mcp)
                self.classification()
                await self.open_sessions()
                await self.terminals_and_jobs()
                await self.big_output()
                await self.flood_output()
                await self.files(mcp)
            await self.api.close_session(self.sid)
            self.sid = ""
            await self.concurrent(rss0)
        finally:
            await self.api.close()
        return self.table

    async def start_gateway(self, stack: contextlib.AsyncExitStack) -> GatewayEcho | None:
        """mcp-ssh-gateway from PyPI in a throwaway venv (cached between runs), or None."""
        cache = Path(os.environ.get("SSHKEEP_BENCH_CACHE", Path.home() / ".cache" / "sshkeep-bench"))
        log(f"peers: installing/using mcp-ssh-gateway under {cache}")
        script = await asyncio.to_thread(install_gateway, cache)
        if script is None:
            self.table.skip("mcp-ssh-gateway echo via MCP", "could not install it from PyPI")
            return None
        workdir = Path(tempfile.mkdtemp(prefix="sk-gw-"))
        stack.callback(shutil.rmtree, workdir, True)
        params = gateway_params(script, self.sshd, workdir)
        client = await stack.enter_async_context(Client(params, read_timeout_seconds=120))
        return GatewayEcho(client)

    async def echo_rounds(self, mcp: Client, gateway: GatewayEcho | None, pty: Any) -> None:
        n = self.plan.echo_rounds
        log(f"echo: {n} interleaved rounds of bare pty / raw spawn / raw control / HTTP / MCP / gateway")
        bare = self.table.add(Row("bare pty round trip (ssh -tt, logged in)", p95=True))
        spawn = self.table.add(Row("raw floor: send-keys process + pipe-pane", p95=True))
        control = self.table.add(Row("raw floor: tmux -C control client + pipe-pane", p95=True))
        http = self.table.add(Row("echo via HTTP (ApiClient.send_command)", p95=True))
        mcpr = self.table.add(Row("echo via MCP (call_tool send_command)", p95=True))
        gw = self.table.add(Row("mcp-ssh-gateway echo via MCP (call_tool run)", p95=True))
        counter = 0

        async def http_echo() -> float:
            nonlocal counter
            counter += 1
            ms, r = await timed(
                lambda: self.api.send_command(self.sid, SendCommandRequest(command=f"echo H{counter}"))
            )
            if (r.status, r.output) != ("completed", f"H{counter}"):
                raise RuntimeError(f"HTTP echo returned {r.status} {r.output!r}")
            return ms

        async def mcp_echo() -> float:
            nonlocal counter
            counter += 1
            ms, res = await timed(
                lambda: mcp.call_tool("send_command", {"session_id": self.sid, "command": f"echo M{counter}"})
            )
            data = structured(res)
            if (data.get("status"), data.get("output")) != ("completed", f"M{counter}"):
                raise RuntimeError(f"MCP echo returned {data.get('status')} {data.get('output')!r}")
            return ms

        for _ in range(3):  # warm-up: connections, caches, first MCP call
            pty.once()
            self.raw.spawn_once()
            self.raw.control_once()
            await http_echo()
            await mcp_echo()
            if gateway is not None:
                await gateway.once()
        for _ in range(n):
            for row, v in (
                (bare, pty.once()),
                (spawn, self.raw.spawn_once()),
                (control, self.raw.control_once()),
            ):
                if v is not None:
                    row.samples.append(v)
            http.samples.append(await http_echo())
            mcpr.samples.append(await mcp_echo())
            if gateway is not None:
                gw.samples.append(await gateway.once())
        floor = spawn.median or float("nan")
        cfloor = control.median or float("nan")
        spawn.note = "one `tmux send-keys` process per call: the raw floor of the target"
        control.note = "send-keys written to a persistent `tmux -C` stdin"
        for row in (http, mcpr):
            med = row.median or float("nan")
            row.note = f"{med / cfloor:.1f}x control-mode floor, {med / floor:.1f}x send-keys floor"
        bare.note = "no tmux, no daemon: the physical floor"
        med = mcpr.median or float("nan")
        if gateway is not None and gw.median:
            ratio = med / gw.median
            mcpr.note += (
                f"; {ratio:.2f}x mcp-ssh-gateway (target <= 1.5x: {'met' if ratio <= 1.5 else 'MISSED'})"
            )
            gw.note = (
                f"peer, same MCP client, same sshd; {gw.median / (bare.median or float('nan')):.1f}x bare pty"
            )
        hmed = http.median or float("nan")
        verdict = "met" if hmed <= 2 * cfloor else "MISSED"
        http.note += f" (target <= 2x control floor: {verdict})"

    def classification(self) -> None:
        """Guard rails: parsing and classifying one command line (tree-sitter-bash), uncached."""
        from sshkeep.daemon.policy.classify import classify
        from tests.unit.test_classify import TABLE

        lines = [line for line, _ in TABLE]
        raw = classify.__wrapped__  # the daemon caches by line; measure the cold cost
        row = self.table.add(Row(f"classify one command line ({len(lines)} lines, uncached)", p95=True))
        for _ in range(10):
            for line in lines:
                t0 = time.perf_counter()
                raw(line)
                row.samples.append((time.perf_counter() - t0) * 1000)
        echo = self.table.get("echo via HTTP (ApiClient.send_command)")
        if echo is not None and echo.median is not None and row.median is not None:
            share = row.median / echo.median * 100
            row.note = f"{share:.1f}% of the HTTP echo median; budget: 0.5 ms per command"

    async def overheads(self, mcp: Client) -> None:
        """Round trips that do no ssh work, interleaved: where the time goes outside the terminal."""
        n = self.plan.echo_rounds
        health = self.table.add(Row("HTTP round trip: GET /v1/health", p95=True))
        lst = self.table.add(Row("HTTP round trip: GET /v1/sessions", p95=True))
        mlst = self.table.add(Row("MCP round trip: call_tool list_sessions", p95=True))
        noop = self.table.add(Row("MCP SDK floor: no-op tool over stdio, no sshkeep", p95=True))
        script = self.raw.workdir / "noop_mcp_server.py"
        script.write_text(NOOP_SERVER)
        params = StdioServerParameters(command=sys.executable, args=[str(script)])
        async with Client(params, read_timeout_seconds=60) as sdk:
            for i in range(n + 3):
                samples = [
                    (await timed(self.api.health))[0],
                    (await timed(self.api.list_sessions))[0],
                ]
                ms, res = await timed(lambda: mcp.call_tool("list_sessions", {}))
                structured(res)
                samples.append(ms)
                ms, res = await timed(lambda i=i: sdk.call_tool("noop", {"x": f"n{i}"}))  # type: ignore[misc]
                if structured(res) != {"x": f"n{i}"}:
                    raise RuntimeError(f"no-op MCP server answered {res}")
                samples.append(ms)
                if i >= 3:  # warm-up rounds
                    for row, v in zip((health, lst, mlst, noop), samples, strict=True):
                        row.samples.append(v)
        shim = (mlst.median or 0) - (lst.median or 0)
        mlst.note = f"MCP client + shim cost over HTTP: {shim:.1f} ms"
        noop.note = "the mcp SDK's own stdio round trip (structured output)"

    async def open_sessions(self) -> None:
        row = self.table.add(Row("open_session (bash, key auth) via HTTP", p95=False))
        log(f"open_session x{self.plan.opens}")
        for _ in range(self.plan.opens):
            ms, info = await timed(lambda: self.api.open_session(OpenSessionRequest(host="bash")))
            if info.state != "ready":
                raise RuntimeError(f"open_session returned {info.state}")
            row.samples.append(ms)
            await self.api.close_session(info.session_id)
        base = [ssh_run(self.sshd, "true")[0] for _ in range(self.plan.opens)]
        b = self.table.add(Row("  baseline: fresh `ssh host true`", samples=base))
        row.note = f"{(row.median or 0) / (b.median or 1):.1f}x a bare ssh login"

    async def terminals_and_jobs(self) -> None:
        """A terminal in the existing session (its ControlMaster: no login) against a new session,
        then 20 idle jobs in one session: what they cost the daemon at rest."""
        row = self.table.add(Row("open_terminal in an existing session via HTTP", p95=True))
        n = max(5, self.plan.opens * 3)
        log(f"open_terminal x{n}")
        for _ in range(n):
            ms, t = await timed(lambda: self.api.open_terminal(self.sid))
            row.samples.append(ms)
            await self.api.close_terminal(self.sid, t.terminal)
        opened = self.table.get("open_session (bash, key auth) via HTTP")
        if opened is not None and opened.median and row.median:
            row.note = f"{opened.median / row.median:.1f}x faster than open_session (target <= 60 ms)"
        jobs = 20
        log(f"{jobs} jobs in one session")
        info = await self.api.open_session(OpenSessionRequest(host="bash"))
        rss0 = rss_kb(self.daemon_pid) or 0
        started = []
        for i in range(jobs):
            req = StartJobRequest(command=f"echo job-{i}; sleep 100000", ready=ReadySpec(pattern=f"job-{i}"))
            started.append(await self.api.start_job(info.session_id, req))
        await asyncio.sleep(2.0)  # let start-up work settle before measuring rest
        rss = rss_kb(self.daemon_pid) or 0
        idle = 5.0 if self.plan.opens <= 3 else 10.0
        cpu0, t0 = cpu_seconds(self.daemon_pid), time.monotonic()
        await asyncio.sleep(idle)
        cpu = (cpu_seconds(self.daemon_pid) - cpu0) / (time.monotonic() - t0)
        self.table.add(
            Row(f"daemon RSS with {jobs} running jobs", unit="MB", value=rss / 1024,
                note=f"+{(rss - rss0) / 1024:.1f} MB over the same daemon before them")
        )  # fmt: skip
        self.table.add(
            Row(f"daemon idle CPU with {jobs} running jobs", unit="%", value=cpu * 100,
                note=f"over {idle:g} s at rest (monitor: one tmux list-panes per 0.5 s)")
        )  # fmt: skip
        for job in started:
            await self.api.stop_job(job.job_id)
        await self.api.close_session(info.session_id)

    async def big_output(self) -> None:
        lines = 100_000
        end = self.table.add(Row(f"seq 1 {lines}: send_command until completed"))
        page = self.table.add(Row(f"  page all {lines} lines: get_command limit=10000"))
        log(f"100k lines x{self.plan.big_runs}")
        for _ in range(self.plan.big_runs):
            ms, r = await timed(
                lambda: self.api.send_command(
                    self.sid, SendCommandRequest(command=f"seq 1 {lines}", timeout=50)
                )
            )
            if r.status != "completed" or r.total_lines != lines:
                raise RuntimeError(f"seq returned {r.status}, {r.total_lines} lines")
            end.samples.append(ms)
            t0 = time.perf_counter()
            offset: int | None = 0
            got: list[str] = []
            calls = 0
            while offset is not None:
                p = await self.api.get_command(
                    self.sid, r.command_id, CommandQuery(offset=offset, limit=10_000)
                )
                got.extend(p.output.split("\n") if p.output else [])
                offset = p.next_offset
                calls += 1
            page.samples.append((time.perf_counter() - t0) * 1000)
            if len(got) != lines or got[-1] != str(lines):
                raise RuntimeError(f"paging returned {len(got)} lines, last {got[-1:]!r}")
            page.note = f"{calls} calls, {len(got)} lines checked"
        raw_ms = [ssh_run(self.sshd, f"seq 1 {lines}")[0] for _ in range(self.plan.big_runs)]
        b = self.table.add(Row(f"  baseline: fresh `ssh host seq 1 {lines}`", samples=raw_ms))
        end.note = f"{(end.median or 0) / (b.median or 1):.1f}x a fresh ssh"

    async def flood_output(self) -> None:
        """200 MB through one command: the daemon's peak RSS and CPU per MB while it flows, then
        /v1/health latency while wait_for(since=0) scans all of it."""
        mb = 200
        log(f"{mb} MB of output: daemon RSS, CPU, health during a full wait_for scan")
        sid = (await self.api.open_session(OpenSessionRequest(host="bash"))).session_id
        peak = rss_kb(self.daemon_pid) or 0
        done = asyncio.Event()

        async def sample_rss() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_kb(self.daemon_pid) or 0)
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample_rss())
        cpu0 = cpu_seconds(self.daemon_pid)
        t0 = time.perf_counter()
        cmd = f"head -c {mb * 1_000_000} /dev/zero | tr '\\0' a | fold -w 100"
        r = await self.api.send_command(sid, SendCommandRequest(command=cmd, timeout=50))
        while r.status == "running":
            r = await self.api.get_command(sid, r.command_id, CommandQuery(wait=30))
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(self.daemon_pid) - cpu0
        done.set()
        await sampler
        if (r.status, r.total_lines) != ("completed", mb * 10_000):
            raise RuntimeError(f"{mb} MB flood returned {r.status}, {r.total_lines} lines")
        self.table.add(
            Row(
                f"{mb} MB output: daemon peak RSS",
                unit="MB",
                value=peak / 1024,
                note=f"{wall:.1f} s to complete",
            )
        )
        self.table.add(Row(f"{mb} MB output: daemon CPU per MB", unit="ms/MB", value=cpu / mb * 1000))
        health = self.table.add(Row(f"health while wait_for scans {mb} MB (since=0)", p95=True))
        wait = asyncio.create_task(
            self.api.wait_for(sid, WaitForRequest(pattern=r"NEVER\d", since=0, timeout=8))
        )
        while not wait.done():
            ms, _ = await timed(self.api.health)
            health.samples.append(ms)
            await asyncio.sleep(0.02)
        found = await wait
        health.note = (
            f"p99 {pct(health.samples, 0.99):.1f} ms; wait searched {found.searched_to / 1e6:.0f} MB"
        )
        await self.api.close_session(sid)

    async def files(self, mcp: Client) -> None:
        row = self.table.add(Row("exec_command `echo` via MCP (side channel, no tty)", p95=True))
        for i in range(self.plan.echo_rounds // 2 + 2):
            ms, res = await timed(
                lambda i=i: mcp.call_tool(  # type: ignore[misc]
                    "exec_command", {"session_id": self.sid, "command": f"echo E{i}"}
                )
            )
            out = structured(res)
            if (out.get("exit_code"), out.get("stdout", "").strip()) != (0, f"E{i}"):
                raise RuntimeError(f"exec_command returned {out}")
            if i >= 2:
                row.samples.append(ms)
        row.note = "a new channel on the session's ssh connection per call"
        log(f"files x{self.plan.file_runs}")
        tag = f"{os.getpid()}-{time.time_ns()}"
        src = f"/tmp/sk-bench-read-{tag}.txt"
        dst = f"/tmp/sk-bench-write-{tag}.txt"
        r = await self.api.send_command(
            self.sid, SendCommandRequest(command=f"seq 1 {READ_FILE_LINES} > {src}; wc -c < {src}")
        )
        size = int(r.output.strip())
        content = ("0123456789abcdef" * 4 + "\n") * (WRITE_BYTES // 65)
        content += "x" * (WRITE_BYTES - len(content) - 1) + "\n"
        read = self.table.add(Row(f"read {size / 1e6:.2f} MB file via MCP read_remote_file"))
        hread = self.table.add(Row("  the same via HTTP POST …/files/read"))
        write = self.table.add(Row(f"write {len(content) / 1e6:.2f} MB file via MCP write_remote_file"))
        hwrite = self.table.add(Row("  the same via HTTP POST …/files/write"))
        try:
            for _ in range(self.plan.file_runs):
                ms, got_read = await timed(
                    lambda: self.api.read_remote_file(self.sid, ReadFileRequest(remote_path=src, limit=size))
                )
                if len(got_read.content) < size * 0.99:
                    raise RuntimeError("HTTP files/read returned a short content")
                hread.samples.append(ms)
                ms, _ = await timed(
                    lambda: self.api.write_remote_file(
                        self.sid, WriteFileRequest(remote_path=dst, content=content)
                    )
                )
                hwrite.samples.append(ms)
                ms, res = await timed(
                    lambda: mcp.call_tool(
                        "read_remote_file", {"session_id": self.sid, "remote_path": src, "limit": size}
                    )
                )
                data = structured(res)
                got = data.get("content") or ""
                if len(got) < size * 0.99:
                    raise RuntimeError(f"read_remote_file returned {len(got)} of {size} chars: {data.keys()}")
                read.samples.append(ms)
                ms, res = await timed(
                    lambda: mcp.call_tool(
                        "write_remote_file", {"session_id": self.sid, "remote_path": dst, "content": content}
                    )
                )
                structured(res)
                write.samples.append(ms)
            check = await self.api.send_command(self.sid, SendCommandRequest(command=f"wc -c < {dst}"))
            if check.output.strip() != str(len(content)):
                raise RuntimeError(f"wrote {len(content)} bytes, remote has {check.output!r}")
            rb = [ssh_run(self.sshd, f"cat {src}")[0] for _ in range(self.plan.file_runs)]
            wb = [
                ssh_run(self.sshd, f"cat > {dst}", stdin=content.encode())[0]
                for _ in range(self.plan.file_runs)
            ]
            b1 = self.table.add(Row("  baseline: fresh `ssh host cat file`", samples=rb))
            b2 = self.table.add(Row("  baseline: fresh `ssh host 'cat > file'`", samples=wb))
            read.note = f"{(read.median or 0) / (b1.median or 1):.1f}x a fresh ssh cat"
            write.note = f"{(write.median or 0) / (b2.median or 1):.1f}x a fresh ssh cat >"
            hread.note = f"MCP adds {(read.median or 0) - (hread.median or 0):.0f} ms"
            hwrite.note = f"MCP adds {(write.median or 0) - (hwrite.median or 0):.0f} ms"
        finally:
            with contextlib.suppress(SshkeepError):
                await self.api.send_command(self.sid, SendCommandRequest(command=f"rm -f {src} {dst}"))

    async def concurrent(self, rss0: int | None) -> None:
        n, k = self.plan.sessions, self.plan.commands_per_session
        log(f"{n} concurrent sessions x {k} commands")
        idle = self.table.get("echo via HTTP (ApiClient.send_command)")
        sids: list[str] = []
        rss_row = Row("daemon RSS, 0 sessions", unit="MB", value=(rss0 or 0) / 1024)
        try:
            sem = asyncio.Semaphore(10)  # sshd's MaxStartups and a 2-core machine: logins in waves

            async def open_one() -> float:
                async with sem:
                    ms, info = await timed(lambda: self.api.open_session(OpenSessionRequest(host="bash")))
                sids.append(info.session_id)
                if info.state != "ready":
                    raise RuntimeError(f"open_session returned {info.state}")
                return ms

            t0 = time.perf_counter()
            opens = await asyncio.gather(*(open_one() for _ in range(n)))
            wall_open = time.perf_counter() - t0
            self.table.add(
                Row(
                    f"open {n} sessions, 10 at a time: each",
                    samples=list(opens),
                    p95=True,
                    note=f"all {n} in {wall_open:.1f} s",
                )
            )
            lat: list[float] = []

            async def worker(sid: str) -> None:
                for i in range(k):
                    ms, r = await timed(
                        lambda i=i: self.api.send_command(sid, SendCommandRequest(command=f"echo C{i}"))  # type: ignore[misc]
                    )
                    if (r.status, r.output) != ("completed", f"C{i}"):
                        raise RuntimeError(f"{sid}: echo returned {r.status} {r.output!r}")
                    lat.append(ms)

            tmux_out = self.inst.tmux("display-message", "-p", "#{pid}").stdout.strip()
            tmux_pid = int(tmux_out) if tmux_out.isdigit() else None
            cpu0 = cpu_seconds(self.daemon_pid)
            tcpu0 = cpu_seconds(tmux_pid) if tmux_pid else 0.0
            busy0 = machine_busy()
            t0 = time.perf_counter()
            await asyncio.gather(*(worker(sid) for sid in sids))
            wall = time.perf_counter() - t0
            cpu = cpu_seconds(self.daemon_pid) - cpu0
            tcpu = (cpu_seconds(tmux_pid) - tcpu0) if tmux_pid else float("nan")
            busy = machine_busy() - busy0
            row = self.table.add(Row(f"echo under load: {n} sessions x {k} commands", samples=lat, p95=True))
            idle_p50 = (idle.median if idle else None) or float("nan")
            row.note = (
                f"{len(lat) / wall:.0f} commands/s; p50 {(row.median or 0) / idle_p50:.1f}x idle HTTP echo; "
                f"CPU: daemon {cpu / wall:.0%}, tmux server {tcpu / wall:.0%}, "
                f"machine {busy / wall / (os.cpu_count() or 1):.0%} of {os.cpu_count()} cores"
            )
            health = await self.api.health()
            self.table.add(rss_row)
            rss = rss_kb(health.pid)
            self.table.add(Row(f"daemon RSS, {health.sessions} sessions", unit="MB", value=(rss or 0) / 1024))
            if tmux_pid is not None:
                t = rss_kb(tmux_pid)
                self.table.add(
                    Row(f"tmux server RSS, {health.sessions} sessions", unit="MB", value=(t or 0) / 1024)
                )
        finally:
            if not any(r is rss_row for r in self.table.rows):
                self.table.add(rss_row)
            for sid in sids:
                with contextlib.suppress(SshkeepError):
                    await self.api.close_session(sid)


# --- main -----------------------------------------------------------------------------------------


@contextlib.contextmanager
def world(workdir: Path) -> Iterator[tuple[SshServer, Instance, RawFloor]]:
    """sshd, an sshkeep instance with its daemon, and the raw floor pane; all removed on exit."""
    sshd = start_sshd(workdir / "sshd")
    inst: Instance | None = None
    raw: RawFloor | None = None
    try:
        # policy operator (the default a user gets): every echo goes through the guard rails.
        inst = new_instance({"bash": {**sshd.connection("bash"), "policy": "operator"}})
        inst.start()
        raw = RawFloor(sshd, workdir)
        raw.start()
        yield sshd, inst, raw
    finally:
        if raw is not None:
            raw.stop()
        if inst is not None:
            inst.destroy()
        sshd.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (about a minute)")
    ap.add_argument("--sessions", type=int, default=50, help="concurrent sessions (default 50)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    args = ap.parse_args(argv)
    problem = environment_problem()
    if problem is not None:
        print(f"bench: cannot run here: {problem}", file=sys.stderr)
        return 2
    if args.quick:
        plan = Plan(
            echo_rounds=20, opens=3, big_runs=1, file_runs=2, sessions=args.sessions, commands_per_session=3
        )
    else:
        plan = Plan(
            echo_rounds=60, opens=5, big_runs=3, file_runs=5, sessions=args.sessions, commands_per_session=10
        )

    def terminate(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt  # unwind through the finally blocks: everything is cleaned up

    signal.signal(signal.SIGTERM, terminate)
    workdir = Path(tempfile.mkdtemp(prefix="sk-bench-"))
    try:
        with world(workdir) as (sshd, inst, raw):
            table = asyncio.run(Bench(plan, sshd, inst, raw).run())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    load = os.getloadavg()
    print(
        f"sshkeep bench ({'quick' if args.quick else 'full'}), {os.cpu_count()} CPUs, "
        f"load {load[0]:.2f}, python {sys.version.split()[0]}, loopback sshd; times in ms\n"
    )
    print(table.render())
    if args.json:
        args.json.write_text(json.dumps(table.as_json(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
