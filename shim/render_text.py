"""Short text renderings of API replies, for MCP text content and the CLI."""

from __future__ import annotations

from sshkeep.common.models.jobs import JobInfo, JobList
from sshkeep.common.models.sessions import (
    CommandList,
    CommandResult,
    CommandSummary,
    SearchResult,
    SessionInfo,
    SessionList,
)


def summary_line(c: CommandSummary) -> str:
    code = f" exit={c.exit_code}" if c.exit_code is not None else ""
    return f"{c.command_id}\t{c.source}\t{c.status}{code}\t{c.command}"


def person_commands(items: list[CommandSummary] | None) -> list[str]:
    if not items:
        return []
    lines = ["a person ran these while holding the terminal (output: get_command):"]
    return lines + ["  " + summary_line(c) for c in items]


def command_list(listing: CommandList) -> str:
    lines = [summary_line(c) for c in listing.commands] or ["no commands"]
    if listing.hint:
        lines.append(f"hint: {listing.hint}")
    return "\n".join(lines)


def session(info: SessionInfo) -> str:
    lines = [f"session {info.session_id} ({info.target}): {info.state}"]
    if info.login:
        lines[0] += f", logged in as {info.login}"
    if info.shell:
        lines[0] += f", shell {info.shell}"
    if info.question is not None:
        lines.append(f"question ({info.question.kind}): {info.question.text}")
    if info.message:
        lines.append(f"ssh said: {info.message}")
    lines += person_commands(info.person_commands)
    if info.hint:
        lines.append(f"hint: {info.hint}")
    return "\n".join(lines)


def sessions(listing: SessionList) -> str:
    if not listing.sessions:
        return "no sessions"
    rows = []
    for s in listing.sessions:
        running = f" running {s.running_command_id}" if s.running_command_id else ""
        asks = f" asks ({s.question.kind}): {s.question.text}" if s.question is not None else ""
        rows.append(f"{s.session_id}\t{s.state}\t{s.login or s.target}{running}{asks}")
        for t in s.terminals:
            what = f" running {t.running_command_id}: {t.running_command}" if t.running_command_id else ""
            job = f" (job {t.job_id})" if t.job_id else ""
            rows.append(f"  terminal {t.terminal}\t{t.state}{job}{what}")
    return "\n".join(rows)


def command(res: CommandResult) -> str:
    if res.status == "approval_required" and res.approval is not None:
        a = res.approval
        return "\n".join(
            [
                f"[approval_required {a.approval_id}] nothing was typed",
                f"class: {a.command_class}",
                f"reason: {a.reason}",
                f"hint: {res.hint or a.hint}",
            ]
        )
    head = f"[{res.session_id} {res.command_id} {res.status}"
    if res.exit_code is not None:
        head += f" exit={res.exit_code}"
    if res.offset:
        head += f" from line {res.offset}"
    head += "]"
    parts = [head]
    if res.output:
        parts.append(res.output)
    if res.saved is not None:
        sv = res.saved
        parts.append(
            f"output saved to {sv.local_path}: {sv.lines} lines, {sv.size} bytes, sha256 {sv.sha256}"
        )
    if res.question is not None:
        parts.append(f"question ({res.question.kind}): {res.question.text}")
    if res.secret_echoed:
        parts.append("note: the remote side echoed the secret; it is redacted from this session's output")
    parts += person_commands(res.person_commands)
    if res.note:
        parts.append(f"note: {res.note}")
    if res.screen:
        parts.append(f"screen:\n{res.screen}")
    if res.hint:
        parts.append(f"hint: {res.hint}")
    return "\n".join(parts)


def search(res: SearchResult) -> str:
    head = f"{res.total_matches} matching line(s) of /{res.pattern}/ in {res.lines_searched} lines"
    if not res.complete:
        head += " (incomplete)"
    parts = [head]
    for m in res.matches:
        block = [f"-- {m.command_id} line {m.line}:"]
        block += [f"  {x}" for x in m.before]
        block.append(f"> {m.text}")
        block += [f"  {x}" for x in m.after]
        parts.append("\n".join(block))
    if res.hint:
        parts.append(f"hint: {res.hint}")
    return "\n".join(parts)


def _job_head(j: JobInfo) -> str:
    head = f"[{j.job_id} {j.name} {j.status}"
    if j.exit_code is not None:
        head += f" exit={j.exit_code}"
    if j.stopped_by:
        head += f" by {j.stopped_by}"
    return head + f"] in {j.session_id}, terminal {j.terminal}" + (" (durable)" if j.durable else "")


def job(res: JobInfo) -> str:
    parts = [_job_head(res)]
    ready = getattr(res, "ready", None)
    if ready is not None:
        parts.append(("ready: " if ready else "not ready: ") + (getattr(res, "ready_detail", None) or ""))
    steps = getattr(res, "stop_steps", None) or []
    parts += [f"stop: {step}" for step in steps]
    output = getattr(res, "output", "")
    if output:
        parts.append(output)
    if res.hint:
        parts.append(f"hint: {res.hint}")
    return "\n".join(parts)


def jobs(listing: JobList) -> str:
    if not listing.jobs:
        return "no jobs"
    return "\n".join(_job_head(j) + (f"\n  last: {j.last_line}" if j.last_line else "") for j in listing.jobs)
