"""One SSH session: its tmux pane, its raw log, the markers in it, and its commands.

The pipe-pane log is the source of truth. `scan()` reads what is new in it, finds this session's
markers and moves the state machine: L (ssh authenticated) -> setup typed -> X (integrated) ->
D (prompt, idle). A command record knows where its output starts (C marker, or after the echoed
input) and ends (the D marker that carries its exit status).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import structlog

from sshkeep.common.errors import NotIntegrated
from sshkeep.common.models.base import MAIN_TERMINAL, SessionState
from sshkeep.common.models.sessions import Question, SessionInfo
from sshkeep.common.terminal import lastwords
from sshkeep.common.terminal import markers as mk
from sshkeep.common.terminal.commandline import NO_SHELL, line_ends
from sshkeep.common.terminal.questions import detect_question
from sshkeep.common.terminal.render import render, split_lines
from sshkeep.common.terminal.shellinit import SHELLS_WITH_HOOKS, restorable, setup_lines
from sshkeep.common.tmux import quote_controls
from sshkeep.daemon.sessions.lineindex import LineIndex
from sshkeep.daemon.sessions.loggaps import GapLog, gaps_path
from sshkeep.daemon.sessions.options import set_line
from sshkeep.daemon.sessions.pacer import ScanPacer
from sshkeep.daemon.sessions.replies import (
    FIRST_PAGE_CANDIDATES,
    LOGIN_QUESTIONS,
    disconnect_hint,
    first_page_of,
    login_hint,
)
from sshkeep.daemon.sessions.store import CommandRecord
from sshkeep.daemon.sessions.tmux import quote

log = structlog.get_logger(__name__)

_FD_LOCK = threading.Lock()


class _LastRead:
    """A log reader that keeps the last range it read: one page's steps (indexing, counting,
    rendering) read the same range of a short output more than once. Only within one page: the
    log cap may punch the range out after it."""

    __slots__ = ("_data", "_key", "_read")

    def __init__(self, read: Callable[[int, int], bytes]) -> None:
        self._read = read
        self._key = (-1, -1)
        self._data = b""

    def __call__(self, start: int, end: int) -> bytes:
        if (start, end) != self._key:
            self._data = self._read(start, end)
            self._key = (start, end)
        return self._data


@dataclass(frozen=True)
class OutputPage:
    """What one reply returns of a command's output."""

    lines: list[str]
    total: int
    offset: int
    next_offset: int | None
    truncated: str | None
    dropped: int  # bytes of the output up to `end` the log cap took (see `dropped_bytes`)


# A question needs the output to stay quiet at it this long: `Password: ` followed by more
# output within a second is a program talking, not a program asking.
QUIET_FOR_QUESTION = 1.0
# A shell that has not printed the X marker this long after the setup was typed did not run it.
SETUP_GRACE = 4.0
READ_CHUNK = 4 * 1024 * 1024
TAIL_BYTES = 8192
CLOSING_BYTES = 1024  # ssh's closing lines are short: look for them only this far from the end
INLINE_PAGE_BYTES = 64 * 1024  # output up to this size is paged on the event loop itself
# A scan reads up to this much on the event loop itself (a paced scan of streaming output reads a
# few hundred KB: a pread and a marker search of that take less than a thread hop costs).
INLINE_READ_BYTES = 1024 * 1024


@dataclass
class TakeOver:
    """A person holds the terminal (`sshkeep attach --take`): who, since when, and where the
    session's records then stood (see daemon/sessions/control.py)."""

    holder_pid: int | None
    since: float
    first_seq: int


@dataclass
class Session:
    """State of one session; owned and driven by the SessionManager."""

    id: str
    pane_id: str
    target: str
    connection: str | None
    nonce: str
    created_at: float
    log_path: Path
    attach: str
    ssh_argv: list[str] = field(default_factory=list)
    login: str | None = None
    # A session's first terminal is the Session itself (terminal "main"); each other terminal is a
    # Session object of its own for another pane of the same tmux session (daemon/sessions/terminals.py).
    terminal: str = MAIN_TERMINAL
    job_id: str | None = None
    shell: str | None = None
    integrated: bool = False
    authenticated: bool = False
    x_seen: bool = False
    setup_sent: bool = False
    setup_at: float | None = None
    dead: bool = False
    dead_status: int | None = None
    dead_at: float | None = None
    dropped_before: int = 0
    # Where the current login's text starts in the log (a reconnect appends a new login to it).
    login_pos: int = 0
    # The shell an earlier login of this pane integrated: a reconnect that is slow to print the
    # setup's X marker is a slow login, never a reason to judge the shell not sh-compatible.
    known_shell: str | None = None
    # The log's size when the monitor first saw the pane dead (see the manager's monitor).
    dying_size: int | None = None
    # The shell's working directory, from the W marker of its latest prompt (None: not known), and
    # the one a reconnect asks the new shell to return to.
    cwd: str | None = None
    restore_cwd: str | None = None
    closed: bool = False
    scan_pos: int = 0
    log_size: int = 0
    last_growth: float = field(default_factory=time.monotonic)
    last_ps2_end: int = -1
    last_marker_end: int = 0
    # Highest D sequence number seen: a D marker at or below it is a replay (a command printing
    # an old log or recording), never the end of the running command.
    last_d_seq: int = 0
    # The start of what sshkeep typed for the running command: markers before its echo belong
    # to a prompt cycle someone else started (keys, a person), not to the command.
    echo_needle: str | None = None
    # Keys that may end a line (Enter, Ctrl-C …) went to an idle prompt: a prompt cycle of
    # theirs may still be on its way, and the next command waits for it before typing.
    keys_cycle_at: float | None = None
    foreground_busy: bool = False
    current: CommandRecord | None = None
    commands: dict[str, CommandRecord] = field(default_factory=dict)
    # Request id (send_command's idempotency key) -> the command it typed.
    requests: dict[str, str] = field(default_factory=dict)
    next_seq: int = 1
    interrupt_requested: bool = False
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    on_finished: Callable[[CommandRecord], Awaitable[None]] | None = None
    send_line: Callable[[str], Awaitable[object]] | None = None
    _fd: int | None = None
    _indexes: dict[str, LineIndex] = field(default_factory=dict)
    # Held while a reply reads output and while the log cap punches: one reply sees one hole.
    output_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _kept_cache: dict[str, tuple[int, int]] = field(default_factory=dict)
    # (sent_pos, start of the prompt's line there) of the latest command `_echoed` looked at.
    _echo_from: tuple[int, int] = (-1, 0)
    # Where the latest prompt starts (end of its D marker), and how that prompt renders: a prompt
    # cycle sshkeep did not start (keys, a person) becomes a record of its own from these.
    prompt_pos: int = -1
    prompt_text: str | None = None
    keys_since_prompt: bool = False
    # The running command replaced the shell (`exec bash`) and the setup was typed into the new
    # one: when (monotonic) and where the log stood then; the command ends at the new shell's prompt.
    reintegrating: float | None = None
    reintegrate_pos: int = 0
    # Commands after which sshkeep set up a new shell: id -> REPLACED (the command replaced the
    # shell), STOPPED (the shell had been replaced before it: no start marker came) or LOST (the
    # new shell did not take the setup).
    replaced: dict[str, str] = field(default_factory=dict)
    # Where the log stood when the agent's keys were sent to the latest prompt: everything of
    # that prompt's line before it is prompt, even when the prompt, the keys' echo and their
    # cycle's markers arrive in one read (before the prompt could be learned alone).
    keys_from: int = -1
    # The prompt as an earlier cycle printed it alone: when this one's could not be learned
    # alone (keys typed ahead arrived with it), the typed text starts after it.
    known_prompt: str | None = None
    # A person holds the terminal (`sshkeep attach --take`): the agent's typing is refused.
    control: TakeOver | None = None
    # The person's commands of the last take-over, until the agent's next reply lists them.
    person_report: list[CommandRecord] = field(default_factory=list)
    # Secrets the remote side echoed: (secret, label), replaced in every rendering.
    redactions: list[tuple[str, str]] = field(default_factory=list)
    # What the log could not record (a full disk; a pipe found detached), from its sidecar.
    gaps: GapLog = field(init=False)
    # When the monitor last re-attached a detached pipe-pane (its retries back off).
    repiped_at: float = 0.0
    # When the next scan may run while a command streams output (see pacer.py).
    pacer: ScanPacer = field(default_factory=ScanPacer)

    def __post_init__(self) -> None:
        self.gaps = GapLog(gaps_path(self.log_path))

    # --- state ------------------------------------------------------------------------------------

    @property
    def state(self) -> SessionState:
        if self.dead:
            return "disconnected"
        if self.control is not None:
            return "human"
        if not self.integrated and not (self.setup_sent and self.shell == "none"):
            return "connecting"
        if self.current is not None or self.foreground_busy:
            return "busy"
        return "ready"

    @property
    def integration_lost(self) -> bool:
        """A command replaced the integrated shell with one that did not take the setup."""
        return self.shell == NO_SHELL and LOST in self.replaced.values()

    @property
    def tmux_session(self) -> str:
        return self.id

    @property
    def key(self) -> str:
        """Unique among every terminal of the daemon: names its log, its records and scan task."""
        return terminal_key(self.id, self.terminal)

    @property
    def ref(self) -> str:
        """How a hint names this terminal in a tool call."""
        if self.terminal == MAIN_TERMINAL:
            return f"session_id={self.id!r}"
        return f"session_id={self.id!r}, terminal={self.terminal!r}"

    def info(self, question: Question | None = None, hint: str | None = None) -> SessionInfo:
        # A login that waits at a host-key or password question is waiting for input.
        if (
            question is None
            and not self.dead
            and not self.x_seen
            and self.state == "connecting"
            and self.log_size > 0
            and self.quiet_for() >= QUIET_FOR_QUESTION
        ):
            q = self.pending_question()
            if q is not None and q.kind in LOGIN_QUESTIONS:
                question, hint = q, hint or login_hint(q, self.id)
        message = self.dead_message() if self.dead else None
        if message is not None and hint is None:
            hint = disconnect_hint(message)
        if hint is None and self.integration_lost:
            hint = lost_integration_text()
        state: SessionState = "waiting_input" if question is not None and not self.dead else self.state
        return SessionInfo(
            session_id=self.id,
            target=self.target,
            connection=self.connection,
            login=self.login,
            state=state,
            shell=self.shell,
            integrated=self.integrated,
            created_at=self.created_at,
            tmux_session=self.tmux_session,
            attach=self.attach,
            running_command_id=self.current.command_id if self.current else None,
            question=question,
            message=message,
            exit_status=self.dead_status if self.dead else None,
            person_commands=[r.summary() for r in self.person_report] or None,
            hint=hint,
        )

    # --- log reading ------------------------------------------------------------------------------

    def _log_fd(self) -> int | None:
        """The log, held open for reading (pread needs no seek; tmux's `cat` appends to the same
        file for the session's whole life, and the log cap only punches holes in it)."""
        fd = self._fd
        if fd is None:
            try:
                fd = os.open(self.log_path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                return None
            with _FD_LOCK:  # read_log also runs in worker threads
                if self._fd is None:
                    self._fd = fd
                else:
                    os.close(fd)
                    fd = self._fd
        return fd

    def close_log(self) -> None:
        with _FD_LOCK:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def read_log(self, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        fd = self._log_fd()
        if fd is None:
            raise FileNotFoundError(self.log_path)
        data = os.pread(fd, end - start, start)
        if len(data) < end - start:  # pread may return less than asked: read on to `end` or EOF
            parts = [data]
            got = len(data)
            while got < end - start:
                more = os.pread(fd, end - start - got, start + got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return data

    def current_size(self) -> int:
        fd = self._log_fd()
        return os.fstat(fd).st_size if fd is not None else 0

    def last_words(self, lines: int = 6) -> str:
        """What this login's ssh said last: its closing lines (and a remote shell's own logout
        notice) when they can be told apart, else the end of what the terminal showed after the
        shell's last marker. Never the setup sshkeep typed, nor an earlier login's text."""
        size = self.current_size()
        start = self._words_start(size)
        closing = self.closing_at(size)
        if closing is None and self.x_seen and self.last_marker_end > self.login_pos:
            return ""  # after the shell's last marker comes the shell's text: ssh said nothing
        text = render(mk.strip_markers(self.read_log(closing if closing is not None else start, size)))
        kept = [
            ln for ln in split_lines(self.redact(text)) if ln.strip() and lastwords.TYPED_PREFIX not in ln
        ]
        prompt = (self.prompt_text or "").rstrip()
        if closing is None and kept and prompt and kept[0].startswith(prompt):
            kept[0] = kept[0][len(prompt) :].strip()
            kept = [ln for ln in kept if ln]
        return "\n".join(kept[-lines:])

    def dead_message(self) -> str:
        """A dead session's message: ssh's last words, or how it ended when it said nothing."""
        words = self.last_words()
        if words:
            return words
        status = f" with status {self.dead_status}" if self.dead_status is not None else ""
        return f"ssh exited{status} and printed nothing (killed, or its connection was cut)"

    def dead_end(self) -> int:
        """Where a dead session's running command's output ends: before ssh's closing lines."""
        size = self.current_size()
        closing = self.closing_at(size)
        return closing if closing is not None else size

    def _words_start(self, size: int) -> int:
        """Where this login's last words may start: after its shell's last marker (the prompt,
        or the start of the running command) and never before this login began."""
        return max(self.login_pos, self.last_marker_end, size - TAIL_BYTES)

    def closing_at(self, size: int) -> int | None:
        """The log offset where ssh's closing lines (or the remote shell's logout notice) start
        in the end of this login's log, if it holds any."""
        start = max(self._words_start(size), size - CLOSING_BYTES)
        data = self.read_log(start, size)
        at = lastwords.closing_start(data)
        return start + at if at is not None else None

    def end_login(self) -> CommandRecord | None:
        """Before a fresh ssh starts in this pane (reconnect, respawn): the command that ran ends
        where the old ssh ended (its closing lines excluded), and what follows is the new login's.
        Returns that command's record (to be saved), if one was running."""
        size = self.current_size()
        rec = self.current
        if rec is not None:
            end = self.dead_end()
            if rec.out_start is None:
                hooks = self.shell in SHELLS_WITH_HOOKS
                rec.out_start = end if hooks else min(self.output_start(rec), end)
            rec.out_end = max(rec.out_start, end)
            rec.status = "disconnected"
            rec.ended_at = time.time()
            self.current = None
        self.login_pos = self.scan_pos = self.log_size = size
        self.dying_size = None
        self.last_growth = time.monotonic()  # the new login's quiet time starts now
        if self.integrated and self.shell not in (None, NO_SHELL):
            self.known_shell = self.shell
        self.restore_cwd, self.cwd = self.cwd, None
        self.forget_shell()
        return rec

    def screen_tail(self, since: int | None = None) -> str:
        """The rendered end of the log (from `since` at the earliest), for question detection."""
        size = self.log_size
        start = max(0, size - TAIL_BYTES, self.login_pos)  # an earlier login asks nothing now
        if since is not None:
            start = max(start, since)
        elif self.current is not None:
            start = max(start, self.output_start(self.current))
        return self.redact(render(mk.strip_markers(self.read_log(start, size))))

    def redact(self, text: str) -> str:
        """`text` with every secret this session's remote side echoed replaced by its label."""
        for secret, label in self.redactions:
            text = text.replace(secret, label)
        return text

    def latest_record(self) -> CommandRecord | None:
        """The newest command record, whoever typed it (agent, keys or a person)."""
        if self.current is not None:
            return self.current
        return max(self.commands.values(), key=lambda r: r.seq) if self.commands else None

    # --- scanning ---------------------------------------------------------------------------------

    async def scan(self) -> None:
        """Consume new log bytes, act on markers, wake waiters."""
        size = self.current_size()
        if size != self.log_size:
            self.last_growth = time.monotonic()
            self.log_size = size
        if self.scan_pos >= size:
            self.gaps.refresh()  # nothing new to read: a growing gap (a full disk) may still be news
        while self.scan_pos < size:
            chunk_end = min(size, self.scan_pos + READ_CHUNK)
            data = await self._read_maybe_threaded(self.scan_pos, chunk_end)
            # After the read: the writer records a gap before any byte after it reaches the log.
            self.gaps.refresh()
            found, consumed = mk.find_markers(data, self.scan_pos, self.nonce)
            for marker in found:
                await self._handle(marker)
            if consumed == 0:
                break  # only a marker still being written is left
            self.scan_pos += consumed
        self._learn_prompt()
        async with self.changed:
            self.changed.notify_all()

    def forget_shell(self) -> None:
        """A new shell starts in this pane (reconnect, respawn): integrate it from scratch."""
        self.integrated = self.x_seen = self.setup_sent = False
        # The old login's setup time must not make the new one look like a shell that ignored it.
        self.setup_at = None
        self.last_d_seq = 0
        self.reintegrating = None
        self.shell, self.foreground_busy = None, False

    def restore(self, records: list[CommandRecord], saved: tuple[int, int] | None) -> None:
        """Adoption after a daemon restart: the stored records and scan position of this pane; a
        command that had not ended is current again and its output is scanned anew from its start."""
        self.commands = {r.command_id: r for r in records}
        self.requests = {r.request_id: r.command_id for r in records if r.request_id}
        running = [r for r in records if r.out_end is None and r.status in ("running", "waiting_input")]
        if running:
            self.current = running[-1]
        if saved is not None:
            self.scan_pos, self.next_seq = saved
        self.next_seq = max([self.next_seq, *(r.seq + 1 for r in records)])
        if self.current is not None:
            self.scan_pos = min(self.scan_pos, self.current.sent_pos)

    async def _read_maybe_threaded(self, start: int, end: int) -> bytes:
        if end - start > INLINE_READ_BYTES:
            return await asyncio.to_thread(self.read_log, start, end)
        return self.read_log(start, end)

    async def _handle(self, m: mk.Marker) -> None:
        self.last_marker_end = max(self.last_marker_end, m.end)
        if m.kind == "L":
            self.authenticated = True
            if not self.setup_sent:
                await self.send_setup()
        elif m.kind == "X":
            if self.integrated:
                return  # only the setup prints X: after it, an X is output replaying a log
            self.shell = m.shell
            self.x_seen = True
        elif m.kind == "W":
            # Printed right after the prompt's D marker: anywhere else it is output replaying a log.
            if m.start == self.prompt_pos and self.integrated:
                self.cwd = m.text if restorable(m.text) else None
        elif m.kind == "P":
            rec = self.current
            if rec is not None and rec.out_start is not None and m.start >= rec.out_start:
                return  # the command runs: its output cannot be our continuation prompt
            self.last_ps2_end = m.end
        elif m.kind == "C":
            self.keys_cycle_at = None
            rec = self.current
            if rec is not None and rec.out_start is None and m.start >= rec.sent_pos:
                if self._echoed(rec, m.start):
                    rec.out_start = m.end
            elif rec is None and self.integrated and await self._untracked(m) is None:
                self.foreground_busy = True
        elif m.kind == "D":
            if m.seq is not None and m.seq <= self.last_d_seq:
                return
            self.last_d_seq = m.seq or self.last_d_seq
            self.cwd = None  # until this prompt's W marker says
            self.foreground_busy = False
            self.keys_cycle_at = None
            if self.reintegrating is not None and not self.x_seen:
                return  # a prompt of the new shell between setup lines: the command ends after X
            if not self.integrated and self.x_seen:
                self.integrated = True
                if self.reintegrating is not None:
                    await self._replaced_shell_ready()
                self._new_prompt(m)
                log.info("session_ready", session=self.id, shell=self.shell)
                return
            if self.current is None and self.integrated and self.shell not in ("bash", "zsh"):
                # dash and ash have no pre-exec hook: a cycle typed by someone else shows only here.
                await self._untracked(m)
            rec = self.current
            if (
                rec is not None
                and m.start >= rec.sent_pos
                and (rec.out_start is not None or self._echoed(rec, m.start))
            ):
                rec.out_end = m.start
                if rec.out_start is None:
                    rec.out_start = self._after_echo(rec, m.start)
                rec.exit_code = m.status
                rec.status = "interrupted" if self.interrupt_requested else "completed"
                rec.ended_at = time.time()
                self.current = None
                self.interrupt_requested = False
                if self.on_finished is not None:
                    await self.on_finished(rec)
            self._new_prompt(m)

    def _new_prompt(self, m: mk.Marker) -> None:
        self.prompt_pos = m.end
        self.prompt_text = None
        self.keys_since_prompt = False
        self.keys_from = -1

    def keys_sent(self) -> None:
        """The agent's keys go to the terminal now (see `keys_from`)."""
        self.keys_since_prompt = True
        if self.current is None and self.keys_from < 0:
            self.keys_from = self.current_size()

    def _learn_prompt(self) -> None:
        """Remember how the current prompt renders, as soon as it is printed (before any typing)."""
        if self.prompt_text is not None or self.prompt_pos < 0 or self.current is not None:
            return
        data = self.read_log(self.prompt_pos, min(self.scan_pos, self.prompt_pos + TAIL_BYTES))
        if b"\n" in data:
            return
        text = render(mk.strip_markers(data))
        if text.strip():
            self.prompt_text = text
            if text.endswith(" ") and self.keys_from < 0 and not self.keys_since_prompt:
                self.known_prompt = text  # prompts end in a space; keys typed ahead seldom do

    def reading(self) -> bool:
        """The shell reads its command line. bash and zsh print the D marker from their prompt
        hooks, before their line editor takes the terminal: keys that come sooner meet the tty's
        cooked mode, which echoes them before the prompt and cuts a line at 4 KB. The editor has
        it once it prints the prompt (or switches bracketed paste on, just before)."""
        if self.shell not in SHELLS_WITH_HOOKS or self.current is not None or self.prompt_pos < 0:
            return True
        if self.prompt_text is not None:
            return True
        data = self.read_log(self.prompt_pos, min(self.scan_pos, self.prompt_pos + TAIL_BYTES))
        return b"\x1b[?2004h" in data or b"\n" in data

    def _typed_command(self, end: int) -> str:
        """What was typed at the latest prompt, from the echo between the prompt and `end`."""
        raw = self.read_log(self.prompt_pos, end)
        text = render(mk.strip_markers(raw))
        lines = split_lines(text)
        prompt_text = self.prompt_text
        if prompt_text is None and self.prompt_pos <= self.keys_from <= end:
            prompt_text = render(mk.strip_markers(raw[: self.keys_from - self.prompt_pos]))
            prompt_text = split_lines(prompt_text)[-1] if prompt_text.strip() else None
        prompt = (prompt_text or "").rstrip()
        known = (self.known_prompt or "").rstrip()
        out: list[str] = []
        for i, line in enumerate(lines):
            if i == 0:
                if known and known != prompt and known in line:
                    # Keys typed ahead (echoed before the prompt), or a prompt learned from a part
                    # of it: what was typed at this prompt follows the prompt's text.
                    line = line[line.rindex(known) + len(known) :]
                elif prompt and line.startswith(prompt):
                    line = line[len(prompt) :]
                out.append(line.strip())
            else:
                out.append(line[2:] if line.startswith("> ") else line)  # continuation prompt (PS2)
        return self.redact("\n".join(out).strip())

    async def _untracked(self, m: mk.Marker) -> CommandRecord | None:
        """A record for a prompt cycle sshkeep did not start: at its C marker (bash, zsh), or once
        it ended (D marker; dash and ash, whose first echoed line is the command)."""
        if self.prompt_pos < 0 or m.start < self.prompt_pos:
            return None
        if m.kind == "C":
            command = self._typed_command(m.start)
        else:
            data = self.read_log(self.prompt_pos, m.start)
            nl = data.find(b"\n")
            if nl == -1:
                return None
            command = self._typed_command(self.prompt_pos + nl)
            if command.endswith("^C"):
                return None  # a line abandoned with Ctrl-C: nothing ran
        if not command:
            return None
        rec = self.new_record(
            command,
            sent_pos=self.prompt_pos,
            skip_newlines=command.count("\n") + 1,
            out_start=m.end if m.kind == "C" else None,
            source="person" if self.control is not None or not self.keys_since_prompt else "keys",
        )
        self.commands[rec.command_id] = rec
        self.current = rec
        self.echo_needle = None  # sshkeep typed none of it: nothing of ours to wait for in the echo
        self.interrupt_requested = False
        log.info("command_seen", session=self.id, command_id=rec.command_id, source=rec.source)
        if self.on_finished is not None:
            await self.on_finished(rec)
        return rec

    def new_record(
        self,
        command: str,
        *,
        sent_pos: int,
        skip_newlines: int,
        out_start: int | None = None,
        source: str = "agent",
        request_id: str | None = None,
    ) -> CommandRecord:
        """A running command's record with the next id of this terminal (stored under its key)."""
        seq = self.next_seq
        self.next_seq += 1
        return CommandRecord(
            session_id=self.key,
            command_id=f"c{seq}",
            seq=seq,
            command=command,
            status="running",
            exit_code=None,
            sent_pos=sent_pos,
            skip_newlines=skip_newlines,
            out_start=out_start,
            out_end=None,
            started_at=time.time(),
            source=source,
            request_id=request_id,
        )

    async def follow_typed(self, command: str) -> CommandRecord:
        """A record for a line keys typed at an idle dash or ash prompt that replaces the shell
        (`exec sh`): those shells mark a typed line only when it ends, and the old shell never
        prints that end, so the record starts here and ends once the new shell is set up."""
        rec = self.new_record(
            command, sent_pos=max(0, self.prompt_pos), skip_newlines=command.count("\n") + 1, source="keys"
        )
        self.commands[rec.command_id] = rec
        self.current = rec
        self.echo_needle = None
        self.interrupt_requested = False
        if self.on_finished is not None:
            await self.on_finished(rec)
        return rec

    async def reintegrate(self, how: str = "") -> None:
        """The running command replaced the shell (`exec bash`) and a fresh prompt waits: type the
        setup into the new shell. Its prompts count on from the old shell's last one."""
        rec = self.current
        if rec is not None:
            if rec.out_start is None:
                rec.out_start = self._after_echo(rec, self.log_size)
            self.replaced[rec.command_id] = how or REPLACED
        self.integrated = self.x_seen = False
        self.reintegrating = time.monotonic()
        self.reintegrate_pos = self.log_size
        self.last_growth = time.monotonic()  # quiet counts from the setup typed, not from the prompt
        log.info("shell_replaced", session=self.id, terminal=self.terminal)
        await self.send_setup(seq=self.last_d_seq)

    async def _replaced_shell_ready(self) -> None:
        """The new shell took the setup: the command that replaced the old one has completed."""
        self.reintegrating = None
        rec = self.current
        if rec is None:
            return
        self.end_replacing(rec)
        # A command that ran unmarked in a shell that had been replaced: its status is unknown.
        rec.exit_code = None if self.replaced.get(rec.command_id) == STOPPED else 0
        if self.terminal == MAIN_TERMINAL and self.send_line is not None:
            # Adoption after a daemon restart reads the shell kind from the tmux session.
            await self.send_line(set_line(self.id, shell=self.shell or "sh"))
        if self.on_finished is not None:
            await self.on_finished(rec)

    def end_replacing(self, rec: CommandRecord) -> None:
        """End the command that replaced the shell where the new shell's prompt line starts."""
        start = self.output_start(rec)
        data = self.read_log(start, max(start, self.reintegrate_pos))
        rec.out_start = start
        rec.out_end = start + data.rfind(b"\n") + 1
        rec.status = "completed"
        rec.ended_at = time.time()
        self.current = None
        self.interrupt_requested = False

    async def send_setup(self, seq: int = 0) -> None:
        self.setup_sent = True
        self.setup_at = time.monotonic()
        if self.send_line is None:
            return
        parts: list[str] = []
        # A shell that replaced the old one (seq > 0) starts where the old one was: no cd.
        for line, end in line_ends(setup_lines(self.nonce, None if seq else self.restore_cwd, seq)):
            parts.append(f"send-keys -t {self.pane_id} -l -- {quote(line)}{quote_controls(end)}")
        await self.send_line(" ; ".join(parts))

    # --- command output ---------------------------------------------------------------------------

    def _echoed(self, rec: CommandRecord, limit: int) -> bool:
        """Has the shell echoed what sshkeep typed for `rec` before `limit`? A prompt cycle that
        ends (or a command that starts) before that echo was typed by someone else."""
        needle = self.echo_needle
        if not needle or rec is not self.current:
            return True  # adopted after a restart: nothing to compare with
        if self.gaps.between(rec.sent_pos, limit) != (0, 0):
            return True  # a full disk kept the echo out of the log: it cannot be compared
        # From the start of the prompt's line: the row breaks of a wrapped echo depend on it (the
        # bytes before the keys never change: found once per command).
        if self._echo_from[0] != rec.sent_pos:
            before = self.read_log(max(0, rec.sent_pos - 4096), rec.sent_pos)
            self._echo_from = (rec.sent_pos, rec.sent_pos - len(before) + before.rfind(b"\n") + 1)
        seen = render(mk.strip_markers(self.read_log(self._echo_from[1], limit)))
        return needle in seen.replace("\n", "")

    def _after_echo(self, rec: CommandRecord, limit: int) -> int:
        """Where output starts when no C marker came: after the echoed input's line ends."""
        data = self.read_log(rec.sent_pos, limit)
        pos = 0
        for _ in range(rec.skip_newlines):
            nl = data.find(b"\n", pos)
            if nl == -1:
                return limit
            pos = nl + 1
        # Continuation prompts printed while the shell read the input are not output.
        start = rec.sent_pos + pos
        return max(start, self.last_ps2_end if rec.sent_pos <= self.last_ps2_end <= limit else start)

    def output_start(self, rec: CommandRecord) -> int:
        if rec.out_start is not None:
            return rec.out_start
        return self._after_echo(rec, self.log_size) if self.shell not in ("bash", "zsh") else self.log_size

    def kept_start(self, rec: CommandRecord) -> int:
        """Where the output that can still be returned starts: its start, or, once the log cap
        punched out its beginning, the first whole line after the hole (a partial line is dropped
        with it, so no reply starts mid-line)."""
        start = self.output_start(rec)
        hole = self.dropped_before
        if hole <= start:
            return start
        cached = self._kept_cache.get(rec.command_id)
        if cached is not None and cached[0] == hole:
            return cached[1]
        pos = hole
        limit = rec.out_end if rec.out_end is not None else self._safe_end()
        kept = limit
        while pos < limit:
            data = self.read_log(pos, min(limit, pos + 65536))
            nl = data.find(b"\n")
            if nl != -1:
                kept = pos + nl + 1
                break
            pos += len(data)
        if rec.out_end is not None or kept < limit:  # else the line may still end later
            self._kept_cache[rec.command_id] = (hole, kept)
        return kept

    def output_bytes_range(self, rec: CommandRecord) -> tuple[int, int]:
        """The log range [start, end) of what can still be returned of this command's output."""
        start = self.kept_start(rec)
        end = rec.out_end if rec.out_end is not None else max(start, self._safe_end())
        return start, max(start, end)

    def dropped_bytes(self, rec: CommandRecord, end: int | None = None) -> int:
        """How much of this command's output (up to `end`) the log cap took: the punched-out
        bytes and the partial line after them."""
        if end is None:
            end = rec.out_end if rec.out_end is not None else self._safe_end()
        start = self.output_start(rec)
        return max(0, min(end, self.kept_start(rec)) - start)

    def unrecorded(self, rec: CommandRecord, end: int) -> tuple[int, int]:
        """(bytes a full disk kept out of this command's output up to `end`, gaps of unknown size)."""
        return self.gaps.between(self.output_start(rec), end)

    def _safe_end(self) -> int:
        """End of complete data: never cut a marker that is still being written."""
        return self.scan_pos

    async def output_page(
        self, rec: CommandRecord, end: int, *, first: bool, offset: int = 0, limit: int = 1000
    ) -> OutputPage:
        """The rendered lines of this command's output [kept start, `end`) that one reply returns.

        Only what is returned is rendered (plus a line index built once, see `lineindex`): memory
        stays bounded by the chunk size, never by the output's size. `end` is fixed by the caller
        at one instant, together with the status it reports."""
        async with self.output_lock:
            if end - self.output_start(rec) <= INLINE_PAGE_BYTES:  # a thread hop costs more than this
                page = self._page(rec, end, first, offset, limit)
            else:
                page = await asyncio.to_thread(self._page, rec, end, first, offset, limit)
        if self.redactions:  # an echoed secret is overwritten in the log; this covers the moment before
            page = replace(page, lines=[self.redact(line) for line in page.lines])
        return page

    def _page(self, rec: CommandRecord, end: int, first: bool, offset: int, limit: int) -> OutputPage:
        start = min(self.kept_start(rec), end)
        dropped = max(0, start - self.output_start(rec))
        index = self._indexes.get(rec.command_id)
        if index is None or index.start > start:
            index = LineIndex.at(start)
        read = _LastRead(self.read_log)  # indexing and rendering a short output read the same bytes
        index.rebase(read, start)
        self._indexes[rec.command_id] = index
        while len(self._indexes) > 4:
            self._indexes.pop(next(iter(self._indexes)))
        index.extend(read, end)
        total = index.total(read, end)
        if first:
            n = FIRST_PAGE_CANDIDATES
            head = index.lines(read, 0, min(n, total), end)
            # When the head holds every line, the tail is not needed (first_page_of takes the head).
            tail = index.lines(read, max(0, total - n), min(n, total), end) if len(head) < total else []
            page, next_offset, truncated = first_page_of(head, tail, total)
            return OutputPage(page, total, 0, next_offset, truncated, dropped)
        page = index.lines(read, offset, limit, end)
        next_offset = offset + len(page) if offset + len(page) < total else None
        return OutputPage(page, total, offset, next_offset, None, dropped)

    # --- questions --------------------------------------------------------------------------------

    def quiet_for(self) -> float:
        return time.monotonic() - self.last_growth

    def pending_question(self, alternate_on: bool = False) -> Question | None:
        """What the terminal is asking, judged from the quiet end of the log."""
        if alternate_on:
            return Question(kind="fullscreen", text="a full-screen program is running (alternate screen)")
        tail = self.screen_tail()
        stripped = tail.rstrip()
        if self.last_ps2_end >= 0 and self.current is not None and self.last_ps2_end >= self.current.sent_pos:
            after = self.read_log(self.last_ps2_end, self.log_size)
            # No line end since the last PS2 marker: the shell still reads that line. This also
            # holds for zsh, whose PS2 names the construct ("quote> ") and is followed by zle's
            # own escapes (ESC =, ESC [?2004h).
            if b"\n" not in after or not re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", after).strip(b" >\r\n\t"):
                return Question(
                    kind="continuation",
                    text="the shell waits for more input (unclosed quote, bracket or here-document)",
                )
        if not stripped:
            return None
        q = detect_question(tail)
        if q is None:
            return None
        return Question(kind=q.kind, text=q.text)


def lost_integration_text() -> str:
    """What replies say once a command replaced the shell with one that did not take the setup."""
    return f"[{NotIntegrated.code}] {LOST_INTEGRATION} {NotIntegrated.default_hint}"


LOST_INTEGRATION = "A command replaced the shell with one sshkeep cannot set up (not sh-compatible)."
REPLACED, STOPPED, LOST = "replaced", "stopped", "lost"


def terminal_key(session_id: str, terminal: str) -> str:
    return session_id if terminal == MAIN_TERMINAL else f"{session_id}@{terminal}"
