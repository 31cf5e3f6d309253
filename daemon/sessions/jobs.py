"""Jobs: long-lived commands, each in a terminal of its own, that outlive every restart.

A job is a command typed into a fresh terminal (daemon/sessions/terminals.py) of its session, so
its output, exit code, paging and waiting are those of any command record; the job adds a name,
readiness (a regex in its output, or a TCP port on the remote host), stop escalation and
retention. Job documents live in SQLite; their terminals are tmux panes adopted on daemon start,
so a job keeps running and keeps its output through shim, daemon and MCP client restarts.

Durable jobs (`durable: true`) also survive the SSH connection: the command runs detached on the
remote host under `setsid` (a session of its own, no terminal, stdin /dev/null), its output and exit
status in files of a private directory (`~/.sshkeep-jobs/<id>/`, mode 0700): `cmd`, `out`, `pid`,
`status`. The job's terminal only follows that output (`tail -f --pid`), and its follower exits with
the job's status; after `reconnect_session` a new follower prints the whole output again and waits
on. Stopping one signals its process group over a side command of the session's master.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import shlex
import time
from dataclasses import asdict, dataclass, fields
from typing import Protocol

import structlog

from sshkeep.common.errors import BadRequest, JobNotFound, RemoteError, SshkeepError
from sshkeep.common.models.jobs import (
    JobInfo,
    JobList,
    JobResult,
    JobStatus,
    ReadySpec,
    StartJobRequest,
    StopSignal,
)
from sshkeep.common.models.sessions import CommandResult
from sshkeep.common.terminal import markers as mk
from sshkeep.common.terminal.render import render, split_lines
from sshkeep.daemon.sessions.commands import SideCommand
from sshkeep.daemon.sessions.session import Session
from sshkeep.daemon.sessions.store import CommandRecord, Store
from sshkeep.daemon.sessions.terminals import Terminals
from sshkeep.daemon.sessions.tmux import Tmux

log = structlog.get_logger(__name__)

SETTLED: frozenset[str] = frozenset({"exited", "stopped", "disconnected", "failed"})
TERMINAL_TIMEOUT = 15.0
PORT_PROBE_INTERVAL = 0.3
REMOTE_ROOT = ".sshkeep-jobs"
_JOB_ID = re.compile(r"^j-[0-9a-f]{6}$")


@dataclass
class Job:
    """One job, as stored (JSON in the store's `jobs` table)."""

    job_id: str
    session_id: str
    name: str
    command: str
    durable: bool
    started_at: float
    cwd: str | None = None
    command_id: str | None = None  # the record in the job's terminal that runs (or follows) it
    shell_pid: int | None = None  # the remote shell of the job's terminal (stop escalation)
    status: str = "starting"  # settled once it is one of SETTLED
    exit_code: int | None = None
    ended_at: float | None = None
    stopped_by: StopSignal | None = None
    remote_dir: str | None = None

    @property
    def terminal(self) -> str:
        return self.job_id

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def load(cls, data: str) -> Job | None:
        try:
            raw = json.loads(data)
            names = {f.name for f in fields(cls)}
            return cls(**{k: v for k, v in raw.items() if k in names})
        except (ValueError, TypeError):
            return None


def job_name(command: str) -> str:
    """A default label: the program's name (past `cd …&&`, env assignments and sudo)."""
    words = re.findall(r"[^\s;&|()]+", command)
    for w in words:
        if "=" in w.split("/")[0] or w in ("sudo", "env", "exec", "nohup", "nice", "time"):
            continue
        return w.rsplit("/", 1)[-1][:40] or "job"
    return "job"


def subshell(command: str) -> str:
    """The job's command as typed: in a subshell, so `exit` or `exec` in it ends the job, not the
    terminal's shell (whose prompt then reports the exit code)."""
    if "\n" in command or "#" in command:
        return f"(\n{command}\n)"
    return f"( {command} )"


def launch_script(job_id: str, command: str, cwd: str | None) -> str:
    """The side command that starts a durable job detached and prints its pid and directory.

    `setsid -f` (util-linux) forks the job into a session of its own from the foreground, so it
    keeps default signal dispositions; without it, `setsid … &` works too, but a shell ignores
    SIGINT in what it starts with `&`, so Ctrl-C does not reach the job (stop_job goes on to SIGTERM).
    The wrapper traps INT/TERM/HUP with a no-op so it outlives a signal to the group and writes
    the job's exit status; only SIGKILL leaves no status (stop_job writes 137 then).
    """
    d = f'"$HOME/{REMOTE_ROOT}/{job_id}"'
    wrapper = (
        'echo $$ > "$1/pid"; trap : INT TERM HUP; '
        '"${SHELL:-/bin/sh}" "$1/cmd" < /dev/null > "$1/out" 2>&1; s=$?; '
        'echo $s > "$1/status.tmp"; mv "$1/status.tmp" "$1/status"'
    )
    cd = f"cd -- {shlex.quote(cwd)} || exit 4; " if cwd else ""
    return (
        f'umask 077; mkdir -p "$HOME/{REMOTE_ROOT}" && chmod 700 "$HOME/{REMOTE_ROOT}" && mkdir {d} '
        "|| exit 3; "
        f"printf '%s\\n' {shlex.quote(command)} > {d}/cmd && : > {d}/out || exit 3; {cd}"
        f"if setsid -f true < /dev/null > /dev/null 2>&1; then "
        f"setsid -f sh -c {shlex.quote(wrapper)} sk {d} < /dev/null > /dev/null 2>&1; "
        f"elif command -v setsid > /dev/null 2>&1; then "
        f"setsid sh -c {shlex.quote(wrapper)} sk {d} < /dev/null > /dev/null 2>&1 & "
        f"else nohup sh -c {shlex.quote(wrapper)} sk {d} < /dev/null > /dev/null 2>&1 & fi; "
        f"i=0; while [ ! -s {d}/pid ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; "
        f'printf "%s %s\\n" "$(cat {d}/pid 2>/dev/null)" {d}'
    )


def follow_command(remote_dir: str) -> str:
    """Typed into a durable job's terminal: print its output from the start, follow it while the
    job runs, then exit with the job's status (GNU tail stops by itself with --pid; other tails are
    stopped a moment after the job's process is gone)."""
    inner = (
        'd=$1; p=$(cat "$d/pid" 2>/dev/null); '
        'if [ -n "$p" ] && tail --pid=$$ -c 0 /dev/null > /dev/null 2>&1; then '
        'tail -s 0.2 -c +1 -f --pid="$p" "$d/out"; '
        'else tail -c +1 -f "$d/out" & t=$!; while kill -0 "$p" 2>/dev/null; do sleep 1; done; '
        "sleep 1; kill $t; fi; "
        'while [ ! -f "$d/status" ]; do sleep 0.2; done; exit "$(cat "$d/status")"'
    )
    return f"sh -c {shlex.quote(inner)} sk {shlex.quote(remote_dir)}"


def signal_script(remote_dir: str, sig: str) -> str:
    """Side command: signal a durable job's process group (exit 2: it had ended already)."""
    d = shlex.quote(remote_dir)
    return (
        f"[ -f {d}/status ] && exit 2; p=$(cat {d}/pid 2>/dev/null) || exit 3; "
        f'kill -s {sig} -- -"$p" 2>/dev/null || kill -s {sig} "$p" 2>/dev/null; '
        + (f"sleep 0.3; [ -f {d}/status ] || echo 137 > {d}/status; " if sig == "KILL" else "")
        + "exit 0"
    )


def foreground_signal_script(shell_pid: int, sig: str) -> str:
    """Side command: signal the foreground process group of a terminal's remote shell (the job)."""
    return (
        f"p={shell_pid}; g=; if [ -r /proc/$p/stat ]; then read -r l < /proc/$p/stat; l=${{l##*) }}; "
        "set -- $l; g=$6; fi; "
        '[ -n "$g" ] || g=$(ps -o tpgid= -p $p 2>/dev/null | tr -d " "); '
        'if [ -n "$g" ] && [ "$g" -gt 0 ] 2>/dev/null && [ "$g" != "$p" ]; then '
        f'kill -s {sig} -- -"$g" 2>/dev/null && echo "$g" && exit 0; fi; exit 1'
    )


def port_probe(port: int) -> str:
    """Side command: exit 0 when something accepts TCP connections on localhost:port, 1 when not,
    2 when the host has neither bash (/dev/tcp) nor nc to ask with."""
    return (
        f"p={port}; if command -v bash > /dev/null 2>&1; then for h in 127.0.0.1 ::1; do "
        'bash -c "exec 3<>/dev/tcp/$h/$p" 2>/dev/null && exit 0; done; exit 1; fi; '
        "if command -v nc > /dev/null 2>&1; then for h in 127.0.0.1 ::1; do "
        'nc -z -w 1 "$h" "$p" 2>/dev/null && exit 0; done; exit 1; fi; exit 2'
    )


class CommandRunner(Protocol):
    """The command runner's calls jobs use (daemon/sessions/commands.py)."""

    async def send_command(
        self, sid: str, command: str, timeout: float, terminal: str | None = None
    ) -> CommandResult: ...

    async def get_command(
        self,
        sid: str,
        command_id: str | None,
        offset: int = 0,
        limit: int | None = None,
        wait: float = 0.0,
        terminal: str | None = None,
    ) -> CommandResult: ...


class Engine(Protocol):
    """What jobs need from the session manager: narrow, so neither module imports the other."""

    @property
    def tmux(self) -> Tmux: ...
    @property
    def store(self) -> Store: ...
    @property
    def sessions(self) -> dict[str, Session]: ...
    @property
    def terminals(self) -> Terminals: ...
    def get(self, sid: str) -> Session: ...

    async def ensure_ready(self, s: Session, timeout: float) -> None: ...


class Jobs:
    """Every job of the daemon: start, list, page, stop, re-attach, retention."""

    def __init__(self, manager: Engine, commands: CommandRunner, side: SideCommand) -> None:
        self.m = manager
        self.commands = commands
        self.side = side
        self.jobs: dict[str, Job] = {}

    # --- persistence ------------------------------------------------------------------------------

    async def adopt(self) -> None:
        for data in await self.m.store.jobs():
            job = Job.load(data)
            if job is None:
                continue
            if job.session_id not in self.m.sessions:
                await self.m.store.forget_job(job.job_id)  # its session is gone (tmux server ended)
                continue
            if job.status == "starting":  # the daemon died while starting it
                job.status, job.ended_at = "failed", time.time()
            self.jobs[job.job_id] = job
            if self._settle(job) or job.status == "failed":
                await self._save(job)
        log.info("jobs_adopted", jobs=len(self.jobs))

    async def _save(self, job: Job) -> None:
        await self.m.store.save_job(job.job_id, job.session_id, job.dump())

    async def forget_session(self, sid: str) -> None:
        for job in [j for j in self.jobs.values() if j.session_id == sid]:
            self.jobs.pop(job.job_id, None)
            await self.m.store.forget_job(job.job_id)

    # --- state ------------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job:
        if not _JOB_ID.match(job_id):
            raise BadRequest(f"{job_id!r} is not a job id (they look like j-1a2b3c)")
        job = self.jobs.get(job_id)
        if job is None:
            raise JobNotFound(f"no job {job_id!r}")
        return job

    def terminal_of(self, job: Job) -> Session | None:
        return self.m.terminals.by_key.get(f"{job.session_id}@{job.terminal}")

    def _record(self, job: Job) -> tuple[Session | None, CommandRecord | None]:
        t = self.terminal_of(job)
        if t is None or job.command_id is None:
            return t, None
        return t, t.commands.get(job.command_id)

    def _settle(self, job: Job) -> bool:
        """Fix a job's final status once its record ended or its terminal died; True if it changed."""
        if job.status in SETTLED or job.status == "starting":
            return False  # start_job settles a start that fails itself
        t, rec = self._record(job)
        if t is None:
            job.status, job.ended_at = "failed", job.ended_at or time.time()
            return True
        # A record that ended with its ssh (`disconnected`) says nothing of the job, which may
        # still run on the host (durable) or was settled when its terminal died.
        if rec is not None and rec.out_end is not None and rec.status != "disconnected":
            job.status = "stopped" if job.stopped_by else "exited"
            job.exit_code = rec.exit_code
            job.ended_at = rec.ended_at or time.time()
            return True
        if t.dead and not job.durable:
            job.status, job.ended_at = "disconnected", t.dead_at or time.time()
            return True
        return False

    def status(self, job: Job) -> JobStatus:
        self._settle(job)
        if job.status in SETTLED or job.status == "starting":
            return job.status  # type: ignore[return-value]
        t, _ = self._record(job)
        if t is not None and t.dead:
            return "detached"
        return "running"

    async def command_finished(self, t: Session, rec: CommandRecord) -> None:
        job = self.jobs.get(t.job_id or "")
        if job is not None and rec.command_id == job.command_id and self._settle(job):
            await self._save(job)
            log.info("job_ended", job=job.job_id, status=job.status, exit_code=job.exit_code)

    async def tick(self) -> None:
        """From the monitor: settle jobs whose terminal died."""
        for job in list(self.jobs.values()):
            if self._settle(job):
                await self._save(job)
                log.info("job_ended", job=job.job_id, status=job.status)

    def wants_respawn(self, t: Session) -> bool:
        """Whether reconnect_session should respawn this dead terminal."""
        if t.job_id is None:
            return True
        job = self.jobs.get(t.job_id)
        return job is not None and job.durable and job.status not in SETTLED

    def last_line(self, job: Job) -> str | None:
        t, rec = self._record(job)
        if t is None or rec is None:
            return None
        start, end = t.output_bytes_range(rec)
        raw = t.read_log(max(start, end - 8192), end)
        lines = [ln for ln in split_lines(render(mk.strip_markers(raw))) if ln.strip()]
        return lines[-1][:300] if lines else None

    def info(self, job: Job) -> JobInfo:
        status = self.status(job)
        hint = None
        if status == "detached":
            hint = (
                "The session's ssh dropped; the job runs on on the host. reconnect_session "
                f"(session_id={job.session_id!r}) re-attaches it."
            )
        elif status == "disconnected":
            hint = "ssh dropped and took this job with it; durable=true jobs survive that."
        elif status in ("running", "starting"):
            hint = f"get_job(job_id={job.job_id!r}, wait=30) follows it; stop_job ends it."
        return JobInfo(
            job_id=job.job_id,
            session_id=job.session_id,
            terminal=job.terminal,
            name=job.name,
            command=job.command,
            durable=job.durable,
            status=status,
            exit_code=job.exit_code if status in SETTLED else None,
            started_at=job.started_at,
            ended_at=job.ended_at,
            command_id=job.command_id,
            last_line=self.last_line(job),
            remote_dir=job.remote_dir,
            stopped_by=job.stopped_by,
            hint=hint,
        )

    def listing(self, sid: str | None = None) -> JobList:
        if sid is not None:
            self.m.get(sid)
        jobs = sorted(
            (j for j in self.jobs.values() if sid is None or j.session_id == sid), key=lambda j: j.started_at
        )
        return JobList(jobs=[self.info(j) for j in jobs])

    async def result(
        self,
        job: Job,
        *,
        offset: int = 0,
        limit: int | None = None,
        wait: float = 0.0,
        ready: bool | None = None,
        ready_detail: str | None = None,
        steps: list[str] | None = None,
    ) -> JobResult:
        t, rec = self._record(job)
        page: CommandResult | None = None
        if t is not None and rec is not None:
            page = await self.commands.get_command(
                job.session_id, rec.command_id, offset=offset, limit=limit, wait=wait, terminal=job.terminal
            )
            if self._settle(job):
                await self._save(job)
        out = JobResult(
            **self.info(job).model_dump(), ready=ready, ready_detail=ready_detail, stop_steps=steps or []
        )
        if page is not None:
            out.command_status = page.status
            out.output, out.offset, out.next_offset = page.output, page.offset, page.next_offset
            out.has_more, out.total_lines, out.truncated = page.has_more, page.total_lines, page.truncated
            if page.next_offset is not None:
                out.hint = f"More output: get_job(job_id={job.job_id!r}, offset={page.next_offset})."
        elif t is None:
            out.hint = "The job's terminal is gone (its tmux pane was closed), and its output with it."
        return out

    # --- start ------------------------------------------------------------------------------------

    def _new_id(self) -> str:
        while True:
            job_id = f"j-{secrets.token_hex(3)}"
            if job_id not in self.jobs:
                return job_id

    async def start(self, sid: str, req: StartJobRequest) -> JobResult:
        main = self.m.get(sid)
        await self.m.ensure_ready(main, TERMINAL_TIMEOUT)
        if "\x00" in req.command:
            raise BadRequest("command contains a NUL byte")
        if req.ready is not None and req.ready.pattern is not None:
            try:
                re.compile(req.ready.pattern)
            except re.error as exc:
                raise BadRequest(f"ready.pattern is not a valid regular expression: {exc}") from exc
        job = Job(
            job_id=self._new_id(),
            session_id=sid,
            name=req.name or job_name(req.command),
            command=req.command,
            durable=req.durable,
            started_at=time.time(),
            cwd=req.cwd,
        )
        self.jobs[job.job_id] = job
        await self._save(job)
        try:
            t = await self.m.terminals.open(sid, job.terminal, TERMINAL_TIMEOUT, job_id=job.job_id)
            if job.durable:
                await self._launch_durable(main, t, job)
            else:
                pid = await self.commands.send_command(sid, "echo $$", 5.0, terminal=job.terminal)
                job.shell_pid = int(pid.output.strip()) if pid.output.strip().isdigit() else None
                text = (f"cd -- {shlex.quote(job.cwd)} && " if job.cwd else "") + subshell(job.command)
                res = await self.commands.send_command(sid, text, 0.0, terminal=job.terminal)
                job.command_id = res.command_id
        except SshkeepError:
            job.status, job.ended_at = "failed", time.time()
            await self._save(job)
            raise
        job.status = "running"
        await self._save(job)
        log.info("job_started", job=job.job_id, session=sid, durable=job.durable)
        if req.ready is None:
            return await self.result(job)
        ok, detail = await self._wait_ready(job, t, req.ready)
        return await self.result(job, ready=ok, ready_detail=detail)

    async def _side(self, main: Session, script: str, timeout: float = 10.0) -> tuple[int | None, str]:
        code, out, err = await self.side(main, script, timeout)
        return code, (out + err).strip()

    async def _launch_durable(self, main: Session, t: Session, job: Job) -> None:
        code, out = await self._side(main, launch_script(job.job_id, job.command, job.cwd), 15.0)
        pid, _, remote_dir = (out.splitlines() or [""])[-1].partition(" ")
        if code != 0 or not pid.isdigit() or not remote_dir:
            why = {3: "could not create its directory", 4: f"cannot cd to {job.cwd!r}"}.get(
                code or 0, out[-300:]
            )
            raise RemoteError(f"the durable job did not start on the host: {why}")
        job.remote_dir = remote_dir
        await self._follow(job)

    async def _follow(self, job: Job) -> None:
        assert job.remote_dir is not None
        res = await self.commands.send_command(
            job.session_id, follow_command(job.remote_dir), 0.0, terminal=job.terminal
        )
        job.command_id = res.command_id

    async def reattach(self, sid: str) -> None:
        """After reconnect_session: follow each unfinished durable job of the session again."""
        for job in [j for j in self.jobs.values() if j.session_id == sid and j.durable]:
            t = self.terminal_of(job)
            if job.status in SETTLED or job.remote_dir is None or t is None or t.dead or t.current:
                continue
            try:
                await self._follow(job)
            except SshkeepError as exc:
                log.warning("job_reattach_failed", job=job.job_id, error=exc.message)
                continue
            await self._save(job)
            log.info("job_reattached", job=job.job_id, command_id=job.command_id)

    # --- readiness --------------------------------------------------------------------------------

    async def _wait_ready(self, job: Job, t: Session, spec: ReadySpec) -> tuple[bool, str]:
        deadline = time.monotonic() + spec.timeout
        if spec.pattern is not None:
            return await self._wait_pattern(job, t, re.compile(spec.pattern), deadline, spec.timeout)
        assert spec.port is not None
        main = self.m.get(job.session_id)
        while True:
            ended = self._ended(job, t)
            if ended is not None:
                return False, ended
            try:
                code, _ = await self._side(main, port_probe(spec.port), 5.0)
            except SshkeepError as exc:
                return False, f"could not probe port {spec.port}: {exc.message}"
            if code == 0:
                return True, f"port {spec.port} accepts connections"
            if code == 2:
                return False, "the host has neither bash nor nc to probe a port with; use a ready pattern"
            if time.monotonic() + PORT_PROBE_INTERVAL >= deadline:
                return False, f"port {spec.port} did not accept connections within {spec.timeout:g}s"
            async with t.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(t.changed.wait(), PORT_PROBE_INTERVAL)

    def _ended(self, job: Job, t: Session) -> str | None:
        _, rec = self._record(job)
        if rec is not None and rec.out_end is not None:
            return f"the job ended (exit code {rec.exit_code}) before it was ready"
        if t.dead:
            return "ssh exited before the job was ready"
        return None

    async def _wait_pattern(
        self, job: Job, t: Session, regex: re.Pattern[str], deadline: float, timeout: float
    ) -> tuple[bool, str]:
        searched = -1
        carry = ""
        async with t.changed:
            while True:
                _, rec = self._record(job)
                if rec is not None:
                    start = t.output_start(rec)
                    end = rec.out_end if rec.out_end is not None else t.scan_pos
                    searched = max(searched, start)
                    if end > searched:
                        text = carry + render(mk.strip_markers(t.read_log(searched, end)))
                        searched = end
                        lines = split_lines(text)
                        for line in lines:
                            if regex.search(line):
                                return True, f"output matched: {line[:300]}"
                        carry = lines[-1] if lines and not text.endswith("\n") else ""
                ended = self._ended(job, t)
                if ended is not None:
                    return False, ended
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False, f"no output line matched /{regex.pattern}/ within {timeout:g}s"
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(t.changed.wait(), min(remaining, 0.5))

    # --- stop -------------------------------------------------------------------------------------

    async def stop(self, job_id: str, grace: float) -> JobResult:
        job = self.get(job_id)
        status = self.status(job)
        if status in SETTLED:
            return await self.result(job, steps=[f"the job had already ended ({status})"])
        t = self.terminal_of(job)
        main = self.m.get(job.session_id)
        steps: list[str] = []
        signals: tuple[StopSignal, ...] = ("SIGINT", "SIGTERM", "SIGKILL")
        for sig in signals:
            try:
                sent = await self._signal(job, t, main, sig)
            except SshkeepError as exc:
                steps.append(f"{sig}: could not send it ({exc.message})")
                continue
            steps.append(sent)
            if await self._wait_end(job, t, main, grace):
                job.stopped_by = sig
                self._settle(job)
                if job.status == "exited":
                    job.status = "stopped"
                await self._save(job)
                steps.append(f"{sig} ended it (exit code {job.exit_code})")
                log.info("job_stopped", job=job.job_id, signal=sig)
                return await self.result(job, steps=steps)
            steps.append(f"still running {grace:g}s after {sig}")
        return await self.result(job, steps=steps)

    async def _signal(self, job: Job, t: Session | None, main: Session, sig: StopSignal) -> str:
        name = sig[3:]
        if job.durable:
            assert job.remote_dir is not None
            code, out = await self._side(main, signal_script(job.remote_dir, name), 10.0)
            if code == 2:
                return f"{sig}: the job had just ended"
            if code != 0:
                raise RemoteError(out or f"exit status {code}")
            return f"{sig} sent to the job's process group on the host"
        if t is None or t.dead:
            raise RemoteError("the job's terminal is gone")
        if sig == "SIGINT":
            t.interrupt_requested = False  # the job's status says "stopped", the record its exit code
            await self.m.tmux.command(f"send-keys -t {t.pane_id} C-c")
            t.last_growth = time.monotonic()
            return "SIGINT sent (Ctrl-C in the job's terminal)"
        if job.shell_pid is None:
            raise RemoteError("the job's shell pid is unknown")
        code, out = await self._side(main, foreground_signal_script(job.shell_pid, name), 10.0)
        if code != 0:
            raise RemoteError("found no foreground process group in the job's terminal")
        return f"{sig} sent to process group {out.strip()}"

    async def _wait_end(self, job: Job, t: Session | None, main: Session, grace: float) -> bool:
        deadline = time.monotonic() + grace
        while True:
            _, rec = self._record(job)
            if rec is not None and rec.out_end is not None:
                return True
            if t is None or t.dead:
                if job.durable and job.remote_dir is not None:
                    code, _ = await self._side(main, f"[ -f {shlex.quote(job.remote_dir)}/status ]", 5.0)
                    if code == 0:
                        job.status, job.ended_at = "stopped", time.time()
                        return True
                elif t is not None and t.dead:
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if t is not None:
                async with t.changed:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(t.changed.wait(), min(remaining, 0.25))
            else:
                await asyncio.sleep(min(remaining, 0.25))

    # --- retention --------------------------------------------------------------------------------

    async def cleanup(self, max_age: float) -> list[str]:
        """Drop finished jobs that ended at least `max_age` seconds ago, with their terminals."""
        now = time.time()
        removed: list[str] = []
        for job in list(self.jobs.values()):
            self._settle(job)
            if job.status not in SETTLED or now - (job.ended_at or now) < max_age:
                continue
            t = self.terminal_of(job)
            if t is not None:
                await self.m.terminals.discard(t)
            main = self.m.sessions.get(job.session_id)
            if job.durable and job.remote_dir and main is not None and not main.dead:
                with contextlib.suppress(SshkeepError):
                    await self._side(main, f"rm -rf -- {shlex.quote(job.remote_dir)}", 10.0)
            self.jobs.pop(job.job_id, None)
            await self.m.store.forget_job(job.job_id)
            removed.append(job.job_id)
        if removed:
            log.info("jobs_removed", jobs=removed, max_age=max_age)
        return removed
