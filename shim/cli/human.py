"""The human side of the API: `sshkeep ls`, `sshkeep attach ID`, `sshkeep logs ID [--follow]`.

`ls` and `attach` ask the daemon (starting one if none answers, like the MCP shim), so they see
exactly what agents see. `logs` reads the session's raw pipe-pane log directly, which works
whether or not a daemon runs, and renders it like command output (escapes stripped, `\\r`
applied); the shell-integration setup lines sshkeep typed at login are left out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import BinaryIO

from sshkeep.common.client import ApiClient
from sshkeep.common.errors import BadRequest, SessionNotFound, SshkeepError, TerminalNotFound
from sshkeep.common.models.base import MAIN_TERMINAL, SESSION_ID_PATTERN
from sshkeep.common.models.sessions import ControlResult, SessionInfo
from sshkeep.common.paths import Paths, resolve_paths
from sshkeep.common.terminal.markers import strip_markers
from sshkeep.common.terminal.render import render, split_lines
from sshkeep.common.terminal.shellinit import START_FUNCTION
from sshkeep.common.terminal.watch import LogWatcher
from sshkeep.shim import render_text
from sshkeep.shim.autostart import ensure_daemon

_SESSION_ID = re.compile(SESSION_ID_PATTERN)
# Echoes of the setup lines (daemon/shellinit.py), also the pieces of them a line editor wrapped
# onto lines of their own, and the start call prefixed to each command in dash and ash sessions:
# sshkeep's plumbing, not the user's transcript.
_SETUP_ECHO = re.compile(r"__sk_|sk=[0-9a-f]{8,32}|133;[A-Z];")
_START_CALL = re.compile(rf"{START_FUNCTION}; ")
FOLLOW_CHECK_SECONDS = 1.0
BLOCK = 1 << 20
TAIL_SLACK = 64


def check_session_id(sid: str) -> str:
    if not _SESSION_ID.match(sid):
        raise BadRequest(
            f"{sid!r} is not a session id (ids look like `bash-1a2b3c`)",
            hint="`sshkeep ls` lists the sessions and their ids.",
        )
    return sid


def _unknown(sid: str) -> SessionNotFound:
    return SessionNotFound(f'no session "{sid}"', hint="`sshkeep ls` lists the sessions and their ids.")


# --- ls -------------------------------------------------------------------------------------------


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(sessions: list[SessionInfo], now: float | None = None) -> str:
    """The `sshkeep ls` table: one row per session, columns sized to their content."""
    now = time.time() if now is None else now
    rows = [["ID", "STATE", "TARGET", "SHELL", "AGE", "RUNNING"]]
    for s in sorted(sessions, key=lambda s: s.created_at):
        rows.append(
            [
                s.session_id,
                s.state,
                s.target,
                s.shell or "-",
                age(now - s.created_at),
                s.running_command_id or "-",
            ]
        )
        for t in s.terminals:
            rows.append(
                [
                    f"{s.session_id}:{t.terminal}",
                    t.state,
                    f"job {t.job_id}" if t.job_id else "terminal",
                    t.shell or "-",
                    age(now - t.created_at),
                    t.running_command_id or "-",
                ]
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


async def _ls(paths: Paths, as_json: bool) -> int:
    async with ApiClient(paths.socket, timeout=60) as client:
        await ensure_daemon(client, paths)
        listing = await client.list_sessions()
    if as_json:
        print(listing.model_dump_json())
        return 0
    if not listing.sessions:
        print("no sessions (agents open them with open_session)")
        return 0
    print(table(listing.sessions))
    for info in listing.sessions:
        if info.question is not None:
            print(f"{info.session_id} asks ({info.question.kind}): {info.question.text}")
    print("\nwatch one: sshkeep attach ID [--terminal T]    its output: sshkeep logs ID [--follow]")
    return 0


# --- attach ---------------------------------------------------------------------------------------


def attach_argv(
    paths: Paths, tmux_session: str, read_only: bool = False, terminal: str | None = None
) -> list[str]:
    """`tmux <our private server> attach -t =<session>` (`=`: exact name, never a prefix); with a
    terminal, its window is selected (each terminal is a window named like it)."""
    argv = [
        "tmux",
        *paths.tmux_args,
        "attach-session",
        *(["-r"] if read_only else []),
        "-t",
        f"={tmux_session}",
    ]
    if terminal is not None and terminal != MAIN_TERMINAL:
        argv += [";", "select-window", "-t", f"={tmux_session}:={terminal}"]
    return argv


async def _session(paths: Paths, sid: str) -> SessionInfo:
    async with ApiClient(paths.socket, timeout=60) as client:
        await ensure_daemon(client, paths)
        try:
            return await client.get_session(sid)
        except SessionNotFound:
            raise _unknown(sid) from None


async def _control(paths: Paths, sid: str, take: bool) -> ControlResult:
    async with ApiClient(paths.socket, timeout=60) as client:
        await ensure_daemon(client, paths)
        return await (client.take_control(sid) if take else client.release_control(sid))


def _attach(paths: Paths, sid: str, read_only: bool, terminal: str | None = None, take: bool = False) -> int:
    info = asyncio.run(_session(paths, check_session_id(sid)))
    if (
        terminal is not None
        and terminal != MAIN_TERMINAL
        and terminal not in {t.terminal for t in info.terminals}
    ):
        names = ", ".join([MAIN_TERMINAL, *(t.terminal for t in info.terminals)])
        raise TerminalNotFound(f'session "{sid}" has no terminal "{terminal}" (it has: {names})')
    tmux = shutil.which("tmux")
    if tmux is None:
        raise BadRequest("tmux is not installed (no `tmux` on PATH)", hint="Install tmux.")
    if take and read_only:
        raise BadRequest(
            "--take and --read-only exclude each other", hint="Watch with -r, or take with --take."
        )
    # Watching is read-only: keys typed while the agent's command runs would mix with its output
    # (the terminal echoes them) and run after it. Typing takes the terminal over (--take).
    argv = attach_argv(paths, info.tmux_session, not take, terminal)
    # Our server is not the one in $TMUX: attaching from inside tmux is intended nesting.
    env = {k: v for k, v in os.environ.items() if k != "TMUX"}
    if not take:
        print(
            f"sshkeep: watching {sid} ({info.target}) read-only; detach with Ctrl-b d, "
            f"type after `sshkeep attach {sid} --take`",
            file=sys.stderr,
            flush=True,
        )
        sys.stdout.flush()
        os.execve(tmux, [tmux, *argv[1:]], env)
    # Taking over: this process stays, holding control while tmux runs (the daemon releases the
    # session itself should this process die), and hands it back once tmux detaches.
    asyncio.run(_control(paths, sid, take=True))
    print(
        f"sshkeep: you hold {sid} ({info.target}); the agent waits. Detach with Ctrl-b d to hand it back.",
        file=sys.stderr,
        flush=True,
    )
    try:
        code = subprocess.run([tmux, *argv[1:]], env=env, check=False).returncode
    finally:
        released = asyncio.run(_control(paths, sid, take=False))
        ran = released.person_commands
        if not released.changed:
            print(f"sshkeep: {sid} was handed back already (sshkeep release)", file=sys.stderr)
        else:
            print(f"sshkeep: handed {sid} back to the agent; you ran {len(ran)} command(s)", file=sys.stderr)
        for c in ran:
            print("  " + render_text.summary_line(c), file=sys.stderr)
    return code


# --- logs -----------------------------------------------------------------------------------------


def transcript(raw: bytes) -> str:
    """A log's bytes as the text a person reads: rendered, without sshkeep's own plumbing."""
    text = render(strip_markers(raw))
    lines = (_START_CALL.sub("", line) for line in text.split("\n"))
    return "\n".join(line for line in lines if not _SETUP_ECHO.search(line))


def log_path(paths: Paths, sid: str) -> Path:
    return paths.logs_dir / f"{check_session_id(sid)}.log"


def _open_log(paths: Paths, sid: str) -> BinaryIO:
    try:
        return open(log_path(paths, sid), "rb")  # closed by the caller
    except FileNotFoundError:
        raise SessionNotFound(
            f'no session "{sid}" (no log at {log_path(paths, sid)})',
            hint="`sshkeep ls` lists the sessions and their ids.",
        ) from None


def _emit(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _lines_text(raw: bytes) -> list[str]:
    return split_lines(transcript(raw))


def _start_offset(f: BinaryIO, lines: int | None) -> int:
    """Where reading starts, always at a line start: past the hole the log cap punched into old
    output (it reads as zeros), and for `-n N` near the end instead of the whole log."""
    fd = f.fileno()
    size = os.fstat(fd).st_size
    try:
        data = os.lseek(fd, 0, os.SEEK_DATA)
    except OSError as exc:  # ENXIO: nothing but a hole; otherwise no SEEK_DATA here
        data = size if exc.errno == errno.ENXIO else 0
    start = data
    if lines is not None:
        pos, count = size, 0
        while pos > data and count <= lines + TAIL_SLACK:  # slack: plumbing lines are dropped
            step = min(BLOCK, pos - data)
            pos -= step
            f.seek(pos)
            count += f.read(step).count(b"\n")
        start = pos
    if data > 0 and start == data:
        print(f"sshkeep: the log's first {data} bytes were dropped (log_cap_mb)", file=sys.stderr)
    if start > 0:
        f.seek(start - 1)
        while True:
            block = f.read(BLOCK)
            if not block:
                return size
            cut = block.find(b"\n")
            if cut >= 0:
                start = f.tell() - len(block) + cut + 1
                break
    return start


def _print_existing(f: BinaryIO, lines: int | None, keep_partial: bool) -> bytes:
    """Print the log from its start offset to its end; return the unfinished last line's bytes
    when `keep_partial` (a follower prints it once it ends), else print it too."""
    f.seek(_start_offset(f, lines))
    if lines is not None:  # bounded: only the tail was selected
        raw = f.read()
        cut = raw.rfind(b"\n") + 1 if keep_partial else len(raw)
        out = _lines_text(raw[:cut])[-lines:] if lines > 0 else []
        if out:
            _emit("".join(line + "\n" for line in out))
        return raw[cut:]
    pending = b""
    while block := f.read(BLOCK):
        pending += block
        cut = pending.rfind(b"\n") + 1
        if cut:
            _emit("".join(line + "\n" for line in _lines_text(pending[:cut])))
            pending = pending[cut:]
    if pending and not keep_partial:
        _emit("".join(line + "\n" for line in _lines_text(pending)))
        return b""
    return pending


def _logs(paths: Paths, sid: str, lines: int | None) -> int:
    with _open_log(paths, sid) as f:
        _print_existing(f, lines, keep_partial=False)
    return 0


async def _follow(paths: Paths, sid: str, lines: int | None) -> int:
    """Print the log, then new output as it arrives, until Ctrl-C or the session is closed.

    Only whole lines are printed as they end (a later `\\r` may still rewrite a partial one);
    on a terminal the unfinished last line (a prompt, a progress bar) is shown and redrawn.
    """
    f = _open_log(paths, sid)
    tty = sys.stdout.isatty()
    changed = asyncio.Event()
    name = f"{sid}.log"
    watcher = LogWatcher(paths.logs_dir, lambda n: changed.set() if n == name else None, poll_interval=0.2)
    watcher.start()
    shown_partial = False
    try:
        pending = _print_existing(f, lines, keep_partial=True)
        data = b""
        while True:
            if data or pending:
                pending += data
                cut = pending.rfind(b"\n") + 1
                text = "".join(line + "\n" for line in _lines_text(pending[:cut])) if cut else ""
                pending = pending[cut:]
                if tty:
                    partial = transcript(pending) if pending else ""
                    if text or partial:
                        _emit(("\r\x1b[K" if shown_partial else "") + text + partial)
                        shown_partial = bool(partial)
                elif text:
                    _emit(text)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), FOLLOW_CHECK_SECONDS)
            changed.clear()
            st = os.fstat(f.fileno())
            if st.st_nlink == 0:  # closing a session removes its log
                break
            try:
                current = os.stat(log_path(paths, sid))
            except FileNotFoundError:
                break
            if (current.st_ino, current.st_dev) != (st.st_ino, st.st_dev):  # replaced: follow the new file
                f.close()
                f = _open_log(paths, sid)
                pending = b""
            elif st.st_size < f.tell():  # truncated
                f.seek(0)
                pending = b""
            data = f.read(BLOCK)
            if len(data) == BLOCK:
                changed.set()  # more to read: come straight back
    finally:
        watcher.stop()
        f.close()
        if shown_partial:
            _emit("\n")
    if pending and not tty:
        _emit(transcript(pending) + "\n")
    print(f"sshkeep: session {sid} was closed", file=sys.stderr)
    return 0


# --- CLI ------------------------------------------------------------------------------------------


def main(args: argparse.Namespace) -> int:
    paths = resolve_paths()
    try:
        if args.cmd == "ls":
            return asyncio.run(_ls(paths, args.json))
        if args.cmd == "attach":
            return _attach(paths, args.session_id, args.read_only, args.terminal, args.take)
        if args.follow:
            try:
                return asyncio.run(_follow(paths, args.session_id, args.lines))
            except KeyboardInterrupt:
                return 0
        return _logs(paths, args.session_id, args.lines)
    except SshkeepError as err:
        print(f"sshkeep {args.cmd}: {err.message}\n{err.hint}", file=sys.stderr)
        return 1
