"""Where an echo's time goes: CPU per call of the daemon and the shim, and a py-spy profile of each.

    python bench/profile.py [--calls N] [--via http|mcp|both] [--py-spy PATH] [--out DIR] [--file-mb N]
                            [--bulk-mb N [--bulk-runs R] [--strace]]
                            [--concurrent N [--sessions M] [--top K]]

With --concurrent N: opens N sessions and runs N concurrent `echo` workers (--calls commands in
all), and reports commands/s, the p50 under load vs one at a time, and the daemon's CPU per command
(a profile of the daemon under load).

With --file-mb N: one N MB read_remote_file over HTTP (content inline) and over MCP as an agent
calls it (no limit: over the inline limit, saved to a local file, its head inline) instead, and a
profile of the MCP client's side.

With --bulk-mb N: R runs of N MB of terminal output through send_command until completed (the
benchmark's `yes | head` command), and the CPU seconds per MB of the daemon, the tmux server and the
pane's log writer, and a py-spy profile of the daemon during them.

Starts a loopback sshd and an sshkeep instance (as bench/bench.py does), opens one session, runs
`echo` N times over HTTP and/or MCP, and reports the CPU seconds the daemon (and the shim) spent per
call. With py-spy on PATH (or --py-spy), records each process during the calls (only samples that
hold the GIL: CPU spent in Python) and prints the top entries by own time and by total time
(py-spy's raw output stays in --out).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import importlib
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mcp import Client  # noqa: E402

from bench import cpu_seconds, mcp_params, mcp_read_check, structured  # noqa: E402
from sshkeep.common.client import ApiClient  # noqa: E402
from sshkeep.common.models.files import ReadFileRequest  # noqa: E402
from sshkeep.common.models.sessions import CommandQuery, OpenSessionRequest, SendCommandRequest  # noqa: E402
from tests.instance import Instance, new_instance  # noqa: E402
from tests.sshd import start_sshd  # noqa: E402


def shim_pid(parent: int) -> int | None:
    """The `sshkeep mcp` process: a child of ours running `-m sshkeep ... mcp`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        if ppid == parent and b"sshkeep" in cmd and b"mcp" in cmd:
            return int(entry.name)
    return None


def top(raw: Path, n: int = 25) -> str:
    """py-spy's `--format raw` (collapsed stacks) as the top frames by own and by total samples."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        c = int(count)
        samples += c
        frames = stack.split(";")
        own[frames[-1]] += c
        for f in set(frames):
            total[f] += c
    out = [f"{samples} samples"]
    out.append("  own%  frame")
    for f, c in own.most_common(n):
        out.append(f"  {100 * c / samples:5.1f}  {f}")
    out.append("  total%  frame")
    for f, c in total.most_common(n * 2):
        if "(asyncio" in f or "(selectors" in f or "<module>" in f:
            continue
        out.append(f"  {100 * c / samples:6.1f}  {f}")
    return "\n".join(out)


def spy(py_spy: str | None, pid: int, out: Path, rate: int) -> subprocess.Popen[bytes] | None:
    if not py_spy:
        return None
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw", "-o", str(out),
         "--nonblocking", "--gil"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def strace(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """`strace -c -f` on `pid` (its system calls, counted, written to `out` when stopped)."""
    argv = ["strace", "-c", "-f", "-p", str(pid), "-o", str(out)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def per_call(counted: Path, calls: int) -> str:
    """`strace -c` output as each system call's count per call of the benchmark, most first."""
    rows = []
    for line in counted.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] != "total" and parts[3].isdigit():
            rows.append((int(parts[3]) / calls, parts[-1]))
    return ", ".join(f"{name} {n:.1f}" for n, name in sorted(rows, reverse=True) if n >= 0.05)


def stop_spy(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None:
        return
    proc.send_signal(2)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(30)


def std_cprofile() -> Any:
    """The standard library's cProfile: this file's name shadows the `profile` module it imports."""
    here = str(Path(__file__).resolve().parent)
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != here]
    try:
        return importlib.import_module("cProfile")
    finally:
        sys.path[:] = saved


async def file_read(api: ApiClient, inst: Instance, sid: str, mb: int, rounds: int) -> None:
    """An `mb` MB read_remote_file over HTTP and over MCP: wall times, the shim's CPU, and a cProfile
    of this process (the MCP SDK's client) during the MCP reads."""
    src = f"/tmp/sk-prof-read-{os.getpid()}.txt"
    size = mb * 1_000_000
    make = f"head -c {size * 3 // 4} /dev/urandom | base64 -w 76 | head -c {size} > {src}; wc -c < {src}"
    r = await api.send_command(sid, SendCommandRequest(command=make, timeout=50))
    assert r.output.strip() == str(size), r
    body = ReadFileRequest(remote_path=src, limit=size)
    http = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        got = await api.read_remote_file(sid, body)
        http.append(time.perf_counter() - t0)
        assert got.length == size
    async with Client(mcp_params(inst), read_timeout_seconds=120) as mcp:
        # As an agent calls it: no limit (over the inline limit, the file goes to a local file).
        args = {"session_id": sid, "remote_path": src}
        how = mcp_read_check(await mcp.call_tool("read_remote_file", args), size, got.sha256)
        spid = shim_pid(os.getpid())
        assert spid is not None, "no shim process found"
        walls, shim_cpu = [], []
        prof = std_cprofile().Profile()
        for _ in range(rounds):
            s0, t0 = cpu_seconds(spid), time.perf_counter()
            prof.enable()
            res = await mcp.call_tool("read_remote_file", args)
            prof.disable()
            walls.append(time.perf_counter() - t0)
            shim_cpu.append(cpu_seconds(spid) - s0)
            mcp_read_check(res, size, got.sha256)
    await api.send_command(sid, SendCommandRequest(command=f"rm -f {src}"))
    med = statistics.median
    ratio = med(walls) / med(http)
    print(f"read {mb} MB: HTTP {1000 * med(http):.0f} ms, MCP {1000 * med(walls):.0f} ms ({ratio:.2f}x, "
          f"target <= 2x: {'met' if ratio <= 2 else 'MISSED'}; {how}), "
          f"shim CPU per MCP read {1000 * med(shim_cpu):.0f} ms")  # fmt: skip
    print("this process (the MCP client) during the MCP reads, by own time:")
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    print("\n".join(line for line in buf.getvalue().splitlines() if line.strip())[-2000:])


def user_sys(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of `pid` so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rfind(")") + 2 :].split()
    hz = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / hz, int(fields[12]) / hz


async def concurrent(api: ApiClient, args: argparse.Namespace, dpid: int, out: Path) -> None:
    """`args.concurrent` sessions (of `args.sessions` open), one echo worker each, `args.calls` commands
    in all."""
    n = args.concurrent
    total = max(n, args.sessions)
    sem = asyncio.Semaphore(10)

    async def open_one() -> str:
        async with sem:
            return (await api.open_session(OpenSessionRequest(host="bash"))).session_id

    every = list(await asyncio.gather(*(open_one() for _ in range(total))))
    sids = every[:n]
    try:
        await asyncio.sleep(2)
        quiet = []
        for i in range(40):
            t0 = time.perf_counter()
            r = await api.send_command(sids[i % n], SendCommandRequest(command=f"echo Q{i}"))
            quiet.append(1000 * (time.perf_counter() - t0))
            assert r.output == f"Q{i}", r
        per = max(1, args.calls // n)
        lat: list[float] = []

        async def worker(sid: str) -> None:
            for i in range(per):
                t0 = time.perf_counter()
                r = await api.send_command(sid, SendCommandRequest(command=f"echo C{i}"))
                lat.append(1000 * (time.perf_counter() - t0))
                assert (r.status, r.output) == ("completed", f"C{i}"), r

        await asyncio.gather(*(worker(sid) for sid in sids[: min(n, 5)]))  # warm-up
        lat.clear()
        p = spy(args.py_spy, dpid, out / "daemon-concurrent.txt", args.rate)
        await asyncio.sleep(0.5)
        (u0, s0), t0 = user_sys(dpid), time.perf_counter()
        await asyncio.gather(*(worker(sid) for sid in sids))
        wall = time.perf_counter() - t0
        u1, s1 = user_sys(dpid)
        cpu = u1 - u0 + s1 - s0
        stop_spy(p)
        med = statistics.median
        k = len(lat)
        ratio = med(lat) / med(quiet)
        print(f"{n} concurrent of {total} sessions: {k} echoes in {wall:.2f} s, {k / wall:.0f} commands/s, "
              f"p50 {med(lat):.1f} ms vs {med(quiet):.2f} ms one at a time = {ratio:.1f}x; "
              f"daemon CPU {1000 * cpu / k:.3f} ms per command "
              f"(user {1000 * (u1 - u0) / k:.3f}, system {1000 * (s1 - s0) / k:.3f})")  # fmt: skip
        if p is not None and (out / "daemon-concurrent.txt").exists():
            print("daemon under load:\n" + top(out / "daemon-concurrent.txt", args.top))
    finally:
        for sid in every:
            with contextlib.suppress(Exception):
                await api.close_session(sid)


def writer_pids() -> list[int]:
    """The pipe-pane log writers (`python -I -S .../logwriter.py LOG GAPS`) now running."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if b"logwriter.py" in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


async def bulk_output(api: ApiClient, inst: Instance, sid: str, dpid: int, args: argparse.Namespace) -> None:
    """N MB through send_command until completed: wall time and CPU per MB of each process."""
    mb = args.bulk_mb
    lines = mb * 1_000_000 // 100  # 99 characters and a newline each
    command = f"yes {'x' * 97}y | head -n {lines}"
    tmux_out = inst.tmux("display-message", "-p", "#{pid}").stdout.strip()
    tpid = int(tmux_out) if tmux_out.isdigit() else None
    walls, dcpu, tcpu, wcpu = [], [], [], []
    p = spy(args.py_spy, dpid, args.out / "daemon-bulk.txt", args.rate)
    st = strace(dpid, args.out / "daemon-strace.txt") if args.strace else None
    await asyncio.sleep(0.5)
    for _ in range(args.bulk_runs):
        wpids = writer_pids()
        c0, t0c = cpu_seconds(dpid), cpu_seconds(tpid) if tpid else 0.0
        w0 = sum(cpu_seconds(w) for w in wpids)
        t0 = time.perf_counter()
        r = await api.send_command(sid, SendCommandRequest(command=command, timeout=50))
        while r.status == "running":
            r = await api.get_command(sid, r.command_id, CommandQuery(wait=50))
        walls.append(time.perf_counter() - t0)
        dcpu.append(cpu_seconds(dpid) - c0)
        tcpu.append((cpu_seconds(tpid) - t0c) if tpid else float("nan"))
        wcpu.append(sum(cpu_seconds(w) for w in wpids) - w0)
        assert r.status == "completed" and r.total_lines == lines and r.exit_code == 0, r
    stop_spy(p)
    stop_spy(st)
    med = statistics.median
    if st is not None and (args.out / "daemon-strace.txt").exists():
        calls = (args.out / "daemon-strace.txt").read_text().splitlines()
        print("daemon system calls:\n" + "\n".join(calls[:16]))
    print(f"bulk {mb} MB x{args.bulk_runs}: {1000 * med(walls):.0f} ms (wall); CPU per MB: daemon "
          f"{1000 * med(dcpu) / mb:.2f} ms, tmux server {1000 * med(tcpu) / mb:.2f} ms, "
          f"log writer {1000 * med(wcpu) / mb:.2f} ms")  # fmt: skip
    print("  daemon CPU per run (s): " + " ".join(f"{c:.3f}" for c in dcpu))
    if p is not None and (args.out / "daemon-bulk.txt").exists():
        print("daemon during the bulk output:\n" + top(args.out / "daemon-bulk.txt"))


async def run(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="sk-prof-"))
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    sshd = start_sshd(workdir / "sshd")
    inst = new_instance({"bash": dict(sshd.connection("bash"))})
    try:
        inst.start()
        async with inst.client() as api:
            health = await api.health()
            dpid = health.pid
            sid = (await api.open_session(OpenSessionRequest(host="bash"))).session_id
            for i in range(20):  # warm-up
                await api.send_command(sid, SendCommandRequest(command=f"echo w{i}"))
            if args.concurrent:
                await concurrent(api, args, dpid, out)
                return
            if args.file_mb:
                await file_read(api, inst, sid, args.file_mb, rounds=5)
                return
            if args.bulk_mb:
                await bulk_output(api, inst, sid, dpid, args)
                return
            if args.via in ("http", "both"):
                p = spy(args.py_spy, dpid, out / "daemon-http.txt", args.rate)
                st = strace(dpid, out / "daemon-strace-http.txt") if args.strace else None
                await asyncio.sleep(0.5)
                c0, t0 = cpu_seconds(dpid), time.perf_counter()
                for i in range(args.calls):
                    r = await api.send_command(sid, SendCommandRequest(command=f"echo h{i}"))
                    assert r.output == f"h{i}", r
                wall = time.perf_counter() - t0
                cpu = cpu_seconds(dpid) - c0
                stop_spy(p)
                stop_spy(st)
                print(f"HTTP: {args.calls} echoes, {1000 * wall / args.calls:.2f} ms each (wall), "
                      f"daemon CPU {1000 * cpu / args.calls:.2f} ms per echo")  # fmt: skip
                if st is not None and (out / "daemon-strace-http.txt").exists():
                    print(
                        "daemon system calls per echo: "
                        + per_call(out / "daemon-strace-http.txt", args.calls)
                    )
                if p is not None and (out / "daemon-http.txt").exists():
                    print("daemon during HTTP echoes:\n" + top(out / "daemon-http.txt"))
            if args.via in ("mcp", "both"):
                async with Client(mcp_params(inst), read_timeout_seconds=60) as mcp:
                    for _ in range(20):
                        structured(
                            await mcp.call_tool("send_command", {"session_id": sid, "command": "echo w"})
                        )
                    spid = shim_pid(os.getpid())
                    assert spid is not None, "no shim process found"
                    p1 = spy(args.py_spy, dpid, out / "daemon-mcp.txt", args.rate)
                    p2 = spy(args.py_spy, spid, out / "shim-mcp.txt", args.rate)
                    await asyncio.sleep(0.5)
                    c0, s0, t0 = cpu_seconds(dpid), cpu_seconds(spid), time.perf_counter()
                    for i in range(args.calls):
                        res = await mcp.call_tool(
                            "send_command", {"session_id": sid, "command": f"echo m{i}"}
                        )
                        assert structured(res)["output"] == f"m{i}", res
                    wall = time.perf_counter() - t0
                    cpu, scpu = cpu_seconds(dpid) - c0, cpu_seconds(spid) - s0
                    stop_spy(p1)
                    stop_spy(p2)
                    n = args.calls
                    print(f"MCP: {n} echoes, {1000 * wall / n:.2f} ms each (wall), "
                          f"daemon CPU {1000 * cpu / n:.2f} ms, shim CPU {1000 * scpu / n:.2f} ms "
                          "per echo")  # fmt: skip
                    if p2 is not None and (out / "shim-mcp.txt").exists():
                        print("shim during MCP echoes:\n" + top(out / "shim-mcp.txt"))
            await api.close_session(sid)
    finally:
        inst.destroy()
        sshd.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--via", choices=("http", "mcp", "both"), default="both")
    ap.add_argument("--py-spy", default=shutil.which("py-spy"))
    ap.add_argument("--rate", type=int, default=500)
    ap.add_argument("--concurrent", type=int, default=0, help="N sessions, N concurrent echo workers")
    ap.add_argument("--sessions", type=int, default=0, help="with --concurrent: open this many in all")
    ap.add_argument("--top", type=int, default=25, help="profile entries to print")
    ap.add_argument("--file-mb", type=int, default=0, help="profile an N MB read_remote_file instead")
    ap.add_argument("--bulk-mb", type=int, default=0, help="profile N MB of terminal output instead")
    ap.add_argument("--bulk-runs", type=int, default=3)
    ap.add_argument(
        "--strace", action="store_true", help="with --bulk-mb or --via http: count the daemon's system calls"
    )
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "sk-profile")
    asyncio.run(run(ap.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
