"""Running commands in a session: typing them, waiting for their end or a question, shaping replies."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from sshkeep.common.errors import (
    BadRequest,
    CommandNotFound,
    SessionBusy,
    SessionDisconnected,
    SessionNotFound,
    TmuxCommandFailed,
    TmuxError,
)
from sshkeep.common.models.base import MAIN_TERMINAL
from sshkeep.common.models.sessions import (
    CommandResult,
    CommandSummary,
    Question,
    SavedOutput,
    SearchRequest,
    SearchResult,
    SendKeysResult,
    Snapshot,
    WaitForResult,
)
from sshkeep.common.terminal.commandline import (
    NO_SHELL,
    PASTE_THRESHOLD,
    clear_line_bytes,
    echo_needle,
    typed_text,
    typing_keys,
)
from sshkeep.common.terminal.foreground import (
    endless_reason,
    has_background_ampersand,
    replaces_shell,
    started_jobs,
)
from sshkeep.common.terminal.keys import LINE_ENDING_KEYS, keys_command
from sshkeep.common.terminal.screenmode import compact_screen, drawn
from sshkeep.common.tmux import quote_controls
from sshkeep.daemon.sessions.options import set_line
from sshkeep.daemon.sessions.replies import (
    DEFAULT_PAGE_LINES,
    UNINTEGRATED_HINT,
    program_of,
    question_hint,
    typed_command,
)
from sshkeep.daemon.sessions.resume import typed_mark
from sshkeep.daemon.sessions.search import search_output
from sshkeep.daemon.sessions.session import (
    LOST,
    QUIET_FOR_QUESTION,
    REPLACED,
    SETUP_GRACE,
    STOPPED,
    Session,
    lost_integration_text,
)
from sshkeep.daemon.sessions.store import CommandRecord, Store
from sshkeep.daemon.sessions.tmux import Tmux
from sshkeep.daemon.sessions.waitscan import BUDGET, BudgetSpent, Pattern, search_chunk

log = structlog.get_logger(__name__)

# A side command over the session's ssh master: (session, script, timeout) -> (exit code, stdout, stderr).
SideCommand = Callable[[Session, str, float], Awaitable[tuple[int | None, str, str]]]

if TYPE_CHECKING:
    from sshkeep.daemon.files.local import LocalFiles

log = structlog.get_logger(__name__)

# An unintegrated shell's command counts as done after this much quiet output.
QUIET_DONE = 1.0
# How much of a running command's latest output shows whether it draws a screen.
DRAW_LOOKBACK = 64 * 1024
# A full-screen program's screen in a reply: enough to see where it is, not a page of frames.
SCREEN_LINES = 6
SCREEN_CHARS = 480
# Lines per step when saving a command's output to a local file.
SAVE_PAGE_LINES = 5000
# How a shell prompt's last line ends (`$ `, `# `, `% `, `> `, starship's `❯ `).
_SHELL_PROMPT = re.compile(r"[$#%>❯»] ?$")
# Programs that are shells: Ctrl-C does not end them.
SHELLS = frozenset({"bash", "zsh", "sh", "dash", "ash", "ksh", "mksh", "fish", "tcsh", "csh", "busybox"})
# How long a command waits for the prompt cycle of keys sent to an idle prompt.
KEYS_SETTLE = 3.0
# How long a command waits for a keys' or person's command that replaced the shell to end.
REPLACE_SETTLE = 10.0
KEYS_QUIET = 0.25
# How long typing waits at most for the shell's line editor to read the terminal (a prompt
# that prints nothing the editor could be known by).
READING_WAIT = 2.0

# Hooks of the people and secrets mechanisms (daemon/sessions/control.py, secrets.py):
# refuse the agent's typing while a person holds the terminal; the person's commands the agent's
# next reply lists (once); the question and hint for a pending secret question.
Guard = Callable[[Session], None]
Report = Callable[[Session], list[CommandSummary] | None]
Advise = Callable[[Session, Question], tuple[Question, str] | None]


def unrecorded_hint(lost: int, uncounted: int, s: Session, rec: CommandRecord) -> str:
    """What a reply says about output its log could not record."""
    parts = []
    if lost:
        parts.append(
            f"{lost} bytes of this command's output could not be recorded (the disk holding the session "
            "logs was full); they are counted in dropped_bytes, the output around them is exact."
        )
    if uncounted:
        text = (
            "Some of this command's output was lost uncounted while the session log's writer was "
            "detached (it has been re-attached)."
        )
        if rec.out_end is None:
            text += (
                f" If its prompt is back (get_snapshot({s.ref})) but it still shows running, its end was "
                "in the lost part: interrupt_command ends it."
            )
        parts.append(text)
    return " ".join(parts)


class Commands:
    """The command half of the API: typing into sessions, following commands, shaping replies.

    Built by the composition root (daemon/server.py) from narrow dependencies: `lookup` (a session
    by id, or SessionNotFound), `ensure_ready` (wait until a session can take a command), the store,
    the tmux client, side commands and the local-file service (output saved to a local file)."""

    def __init__(
        self,
        lookup: Callable[[str, str | None], Session],
        ensure_ready: Callable[[Session, float], Awaitable[None]],
        store: Store,
        tmux: Tmux,
        side: SideCommand | None = None,
        *,
        guard: Guard | None = None,
        report: Report | None = None,
        advise: Advise | None = None,
        local: LocalFiles | None = None,
    ) -> None:
        self.lookup = lookup
        self.ensure_ready = ensure_ready
        self.store = store
        self.tmux = tmux
        self.side = side
        self.local = local
        # (session key, command) -> output lines a reply has already carried in full, so replies
        # that continue a command (send_keys, interrupt_command) do not send them again.
        self._shown: dict[tuple[str, str], int] = {}
        # send_command calls between their record and their end (see `_record_intent`).
        self._running = 0
        self.guard: Guard = guard or (lambda s: None)
        self.report: Report = report or (lambda s: None)
        self.advise: Advise = advise or (lambda s, q: None)

    async def send_command(
        self,
        sid: str,
        command: str,
        timeout: float,
        terminal: str | None = None,
        local_path: str | None = None,
        request_id: str | None = None,
    ) -> CommandResult:
        s = self.lookup(sid, terminal)
        earlier = self.replay(s, request_id, command)
        if earlier is not None:
            return await self._replayed(s, earlier, timeout, local_path)
        self.guard(s)
        await self.ensure_ready(s, timeout)
        where = _where(s)
        if s.current is None or s.current.source != "agent":
            await self._settle_keys(s)
            other = s.current
            if other is not None and other.source != "agent":
                # Keys (or a person) started a command a moment ago: a quick one ends within the
                # settle time and this command follows it; a long one makes the session busy. One
                # that replaces the shell ends once the new shell is set up, which takes longer.
                settle = (
                    max(KEYS_SETTLE, min(timeout, REPLACE_SETTLE))
                    if replaces_shell(other.command)
                    else KEYS_SETTLE
                )
                await self._wait_command(s, other, settle)
        await self._until_reading(s)
        # Again, with no await from here until the record exists: the same request may have come
        # twice at once (a client retrying a call it thought lost).
        earlier = self.replay(s, request_id, command)
        if earlier is not None:
            return await self._replayed(s, earlier, timeout, local_path)
        if s.current is not None:
            raise SessionBusy(
                f"{where} is still running command {s.current.command_id} ({s.current.command[:60]!r})",
                hint=_busy_hint(s),
            )
        if s.foreground_busy:
            raise SessionBusy(
                f"{where} is running something typed into the terminal (not by send_command)",
                hint="get_snapshot shows it; send_keys(['C-c']) or interrupt_command stops it; "
                "send_command(host=...) or open_terminal gives another shell.",
            )
        if "\x00" in command:
            raise BadRequest("command contains a NUL byte")
        text = typed_text(command.rstrip("\n"), s.shell)
        rec = s.new_record(
            command, sent_pos=s.current_size(), skip_newlines=text.count("\n") + 1, request_id=request_id
        )
        s.current = rec
        s.echo_needle = echo_needle(text)
        s.commands[rec.command_id] = rec
        if request_id is not None:
            s.requests[request_id] = rec.command_id
        s.interrupt_requested = False
        self._running += 1
        try:
            try:
                await self._type(s, text, rec)
            except TmuxError:
                s.current = None
                rec.status = "failed"
                await self.store.save_command(rec)
                raise
            # Quiet time counts from the keys, as after send_keys: a terminal that was quiet before
            # the command is not a question asked by it (nor worth a look at the screen before it
            # answers).
            s.last_growth = time.monotonic()
            await self._wait_command(s, rec, timeout)
        finally:
            self._running -= 1
        if rec.out_end is None:
            # Still running when the caller is told so: its record must survive a daemon crash.
            await self.store.flush()
        res = await self._result(s, rec, first=True, local_path=local_path)
        return await self._guard_foreground(s, rec, res)

    def replay(self, s: Session, request_id: str | None, command: str) -> CommandRecord | None:
        """The command an earlier call with this request id typed, if any (the same command text,
        else the key is being reused: refused)."""
        if request_id is None:
            return None
        cid = s.requests.get(request_id)
        rec = s.commands.get(cid) if cid is not None else None
        if rec is None:
            return None
        if rec.command != command:
            raise BadRequest(
                f"request_id {request_id!r} was used for another command ({rec.command_id}, "
                f"{rec.command[:60]!r})",
                hint="Use a new request_id for each new command; reuse one only to retry the same call.",
            )
        return rec

    async def _replayed(
        self, s: Session, rec: CommandRecord, timeout: float, local_path: str | None
    ) -> CommandResult:
        """A retried call: follow the command it typed the first time; never type it again."""
        if rec.out_end is None:
            await self._wait_command(s, rec, timeout)
        res = await self._result(s, rec, first=True, local_path=local_path)
        res = await self._guard_foreground(s, rec, res)
        again = (
            f"This call was received before: {rec.command_id} is the one run of this command (nothing "
            "was typed again)."
        )
        res.note = f"{again} {res.note}" if res.note else again
        return res

    async def _record_intent(self, s: Session, rec: CommandRecord) -> None:
        """The record on disk before its keys are typed, or (when the typed mark carries it) just
        after they went to tmux: a daemon killed at any moment after this leaves a record that a
        restarted daemon follows (or, untyped, drops: see resume.py), never a command it cannot
        tell from someone else's."""
        self.store.save_soon(rec, (s.key, s.scan_pos, s.next_seq))
        try:
            # No thread hop when the store is free. While other commands run,
            # commands start in bunches (requests that arrived together): they share one commit
            # at the end of this loop turn; one alone commits right away.
            written = await self.store.flush_soon() if self._running > 1 else self.store.flush_now()
            if not written:
                await self.store.flush()
        except (sqlite3.Error, OSError) as exc:
            # A full disk must not stop the terminal: type anyway, and say so in the log.
            log.warning("command_intent_unsaved", session=s.key, command_id=rec.command_id, error=str(exc))

    async def _guard_foreground(self, s: Session, rec: CommandRecord, res: CommandResult) -> CommandResult:
        """Name background jobs a finished command left behind; suggest start_job for endless ones."""
        if res.status == "running" and s.job_id is None:
            why = endless_reason(rec.command)
            if why is not None:
                res.hint = (
                    f"{why}: start_job(session_id={s.id!r}, command=...) runs it in a terminal of its own "
                    "(ready= waits for a line or a port), to follow with get_job and end with stop_job. "
                    f"This one: get_command({s.ref}, command_id={rec.command_id!r}, wait=30) or "
                    "interrupt_command."
                )
        elif res.status == "completed" and has_background_ampersand(rec.command):
            # The shell reports "[1] 12345" when a job starts: the first lines of the output hold it.
            end = rec.out_end if rec.out_end is not None else s.scan_pos
            view = await s.output_page(rec, end, first=False, offset=0, limit=200)
            res.note = await self._background_note(s, started_jobs(view.lines))
        return res

    async def _background_note(self, s: Session, pids: list[int]) -> str:
        tail = (
            f" They belong to the shell of {_where(s)} and end with it; start_job runs long processes as "
            "jobs you can list, follow and stop."
        )
        if pids and self.side is not None:
            script = (
                f"for p in {' '.join(str(p) for p in pids[:20])}; do kill -0 $p 2>/dev/null || continue; "
                "c=$(tr '\\000' ' ' < /proc/$p/cmdline 2>/dev/null || ps -o args= -p $p 2>/dev/null); "
                'printf "%s %s\\n" "$p" "$c"; done'
            )
            try:
                _, text, _ = await self.side(self.lookup(s.id, None), script, 5.0)
                alive = [ln.strip()[:200] for ln in text.splitlines() if ln.strip()]
            except Exception as exc:  # a note must never fail the command's reply
                return f"The command started background job(s) (pids {pids}); not checked ({exc}).{tail}"
            if not alive:
                return f"The command started background job(s) (pids {pids}); none is running any more."
            return "Still running in the background: " + "; ".join(f"pid {a}" for a in alive) + "." + tail
        return "The command started something in the background with `&`; it may still run." + tail

    async def _settle_keys(self, s: Session) -> None:
        """Keys that may end a line went to the idle prompt: wait until their prompt cycle shows
        (a start or prompt marker), so that it never counts as this command's."""
        if s.keys_cycle_at is None or s.shell == NO_SHELL:
            return
        sent = s.keys_cycle_at
        deadline = sent + KEYS_SETTLE
        async with s.changed:
            while s.keys_cycle_at is not None and not s.dead and time.monotonic() < deadline:
                # The terminal reacted and went quiet without a marker: no cycle of theirs is
                # coming (bash and ash redraw the prompt after Ctrl-C without their hooks).
                if s.last_growth > sent and s.quiet_for() >= KEYS_QUIET:
                    break
                step = min(deadline - time.monotonic(), KEYS_QUIET)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.changed.wait(), max(0.01, step))
        s.keys_cycle_at = None

    async def _until_reading(self, s: Session) -> None:
        """At an idle prompt, wait until the shell reads its command line (see Session.reading)."""
        if s.reading() or s.dead or s.closed:
            return  # the usual case: no lock, no deadline
        deadline = time.monotonic() + READING_WAIT
        async with s.changed:
            while not (s.reading() or s.dead or s.closed) and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        s.changed.wait(), max(0.01, min(0.25, deadline - time.monotonic()))
                    )

    async def _type(self, s: Session, text: str, rec: CommandRecord) -> None:
        """Type `text` as command `rec`, with its record on disk (see `_record_intent`): the keys
        and the pane's typed mark go in one tmux line, which tmux runs whole or not at all.

        A pasted command's record is written before its keys; a short one's typed mark carries its
        record, which is written while tmux and the shell take the keys (see resume.py)."""
        if "\n" in text or len(text) >= PASTE_THRESHOLD:
            await self._record_intent(s, rec)
            buf = f"sk-{s.key}"
            await self.tmux.run("load-buffer", "-b", buf, "-", stdin=text.encode())
            clear = clear_line_bytes(s.shell)
            await self.tmux.command(
                f"{typed_mark(s.pane_id, rec.seq)} ; "
                + (f"send-keys -t {s.pane_id} -l -- {quote_controls(clear)} ; " if clear else "")
                + f"paste-buffer -d -p -b {buf} -t {s.pane_id} ; send-keys -t {s.pane_id} Enter"
            )
        else:
            # One reply block to wait for, after the mark's.
            await self.tmux.command(
                f"{typed_mark(s.pane_id, rec.seq, rec)} ; {typing_keys(s.pane_id, s.shell, text)}",
                sent=lambda: self._record_intent(s, rec),
            )

    async def _wait_command(self, s: Session, rec: CommandRecord, timeout: float) -> Question | None:
        """Wait until the command ends, the session dies, a question shows, or time is up."""
        deadline = time.monotonic() + timeout
        async with s.changed:
            while True:
                if rec.out_end is not None or s.dead or s.closed:
                    return None
                now = time.monotonic()
                quiet = s.quiet_for()
                if s.shell == NO_SHELL and quiet >= QUIET_DONE and s.log_size > rec.sent_pos:
                    await self._finish_by_quiet(s, rec)
                    return None
                if quiet >= QUIET_FOR_QUESTION and await self._replaced_shell(s, rec):
                    continue
                if quiet >= QUIET_FOR_QUESTION and s.reintegrating is None:
                    q = await self._question(s)
                    if q is not None and not (s.shell == NO_SHELL and q.kind in ("prompt", "continuation")):
                        return q
                if now >= deadline:
                    return None
                step = deadline - now
                step = min(step, QUIET_FOR_QUESTION - quiet if quiet < QUIET_FOR_QUESTION else 0.25)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(max(0.01, step)):  # no task per wake, unlike wait_for
                        await s.changed.wait()

    async def _replaced_shell(self, s: Session, rec: CommandRecord) -> bool:
        """The command replaced the shell (`exec bash`) and the new one's prompt waits, quiet and
        without markers: type the setup into it. True when something was done about it (the setup
        typed, or the new shell found unable to take it)."""
        if rec is not s.current:
            return False
        if s.reintegrating is not None:
            if s.x_seen or time.monotonic() - s.reintegrating < SETUP_GRACE:
                return False
            # The setup did not run there (fish, a REPL): the terminal is no longer integrated.
            s.reintegrating = None
            s.shell = NO_SHELL
            s.end_replacing(rec)
            rec.exit_code = None
            s.replaced[rec.command_id] = LOST
            log.warning("shell_not_integrated", session=s.id, terminal=s.terminal)
            if s.terminal == MAIN_TERMINAL:
                with contextlib.suppress(TmuxError):
                    await self.tmux.command(set_line(s.id, shell=NO_SHELL))
            self.store.save_soon(rec, (s.key, s.scan_pos, s.next_seq))
            return True
        if not s.integrated or s.shell == NO_SHELL:
            return False
        how = REPLACED
        if not replaces_shell(rec.command):
            # The shell's markers stopped before this command: the agent typed it, the shell
            # echoed it, yet no start marker came (a person's or a script's `exec` replaced the
            # shell earlier). The new shell's prompt shows the same way.
            if rec.source != "agent" or rec.out_start is not None or not s.echo_needle:
                return False
            if not s._echoed(rec, s.log_size):
                return False
            how = STOPPED
        elif rec.out_start is None and (rec.source != "keys" or s.shell not in ("dash", "ash")):
            return False  # not started yet (no start marker); dash and ash keys lines have none
        q = await self._question(s)
        if q is not None and q.kind != "prompt":
            return False  # a login question of `exec su -`, a full-screen program, a menu
        # Without a start marker, bash and zsh output starts nowhere yet: look past the echo.
        since = s._after_echo(rec, s.log_size) if rec.out_start is None else None
        if q is None and not _SHELL_PROMPT.search(s.screen_tail(since).rsplit("\n", 1)[-1]):
            return False  # nothing that looks like a prompt: the setup would be typed into a program
        await s.reintegrate(how)
        return True

    async def _finish_by_quiet(self, s: Session, rec: CommandRecord) -> None:
        """Unintegrated shell: the command counts as done once output has been quiet a while."""
        end = s.log_size
        data = s.read_log(rec.sent_pos, end)
        last_nl = data.rfind(b"\n")
        rec.out_start = s._after_echo(rec, end)
        # What follows the last line end is the shell's next prompt, not output.
        rec.out_end = max(rec.out_start, rec.sent_pos + last_nl + 1 if last_nl != -1 else end)
        rec.status = "interrupted" if s.interrupt_requested else "completed"
        rec.ended_at = time.time()
        s.current = None
        s.interrupt_requested = False
        self.store.save_soon(rec, (s.key, s.scan_pos, s.next_seq))

    async def _question(self, s: Session) -> Question | None:
        alt = False
        with contextlib.suppress(TmuxError):
            out = await self.tmux.command(f"display-message -p -t {s.pane_id} '#{{alternate_on}}'")
            alt = bool(out) and out[0].strip() == "1"
        rec = s.current
        if rec is not None and (alt or self._drawing(s, rec)):
            prog = program_of(rec.command) or "a program"
            return Question(kind="fullscreen", text=f"{prog} is running full-screen")
        return s.pending_question(alternate_on=alt)

    @staticmethod
    def _drawing(s: Session, rec: CommandRecord) -> bool:
        """The end of the command's output draws a screen (top redrawing in place, say)."""
        start = s.kept_start(rec)
        end = rec.out_end if rec.out_end is not None else s._safe_end()
        return drawn(s.read_log(max(start, end - DRAW_LOOKBACK), end))

    async def _screen(self, s: Session) -> str:
        try:
            rows = await self.tmux.command(f"capture-pane -p -J -t {s.pane_id}")
        except TmuxError:
            return ""
        text, more = compact_screen(rows, SCREEN_LINES, SCREEN_CHARS)
        return text + (f"\n[+{more} rows: get_snapshot shows all]" if more else "")

    async def _result(
        self,
        s: Session,
        rec: CommandRecord,
        *,
        first: bool = False,
        offset: int = 0,
        limit: int | None = None,
        since_shown: bool = False,
        local_path: str | None = None,
    ) -> CommandResult:
        # One instant decides status, exit code and how far the output goes: whatever happens
        # during the awaits below, a reply never says "completed" with output missing, nor pairs
        # one moment's status with another's exit code.
        status, exit_code, ended_at = rec.status, rec.exit_code, rec.ended_at
        finished = rec.out_end is not None
        end = rec.out_end if rec.out_end is not None else s._safe_end()
        if not finished and s.dead and rec is s.current:
            end = max(s.output_start(rec), min(end, s.dead_end()))  # ssh's closing lines are not output
        question: Question | None = None
        hint: str | None = None
        screen: str | None = None
        if not finished and status in ("running", "waiting_input"):
            exit_code = None
            if s.dead:
                status = "disconnected"
                hint = "ssh exited while the command ran; reconnect_session starts a new ssh, close_session ends it."  # noqa: E501
            elif s.closed:
                status = "failed"
                hint = "The session was closed."
            else:
                if s.quiet_for() >= QUIET_FOR_QUESTION and s.reintegrating is None:
                    question = await self._question(s)
                status = "waiting_input" if question is not None else "running"
                hint = (
                    question_hint(question, s.id, rec.command)
                    if question is not None
                    else f"Still running: get_command({s.ref}, command_id={rec.command_id!r}, "
                    "wait=30) follows it; interrupt_command stops it."
                )
                advice = self.advise(s, question) if question is not None else None
                if advice is not None:  # a secret question: its answer must not pass through the agent
                    question, hint = advice
                if question is not None and question.kind == "fullscreen":
                    screen = await self._screen(s)
        elif s.replaced.get(rec.command_id) == STOPPED:
            hint = (
                "The shell had been replaced before this command (its markers had stopped): sshkeep set "
                f"up the new one ({s.shell}). This command ran unmarked, so its exit code is unknown and "
                "its output may hold an error about sshkeep's prefix; run it again for an exact result."
            )
        elif rec.command_id in s.replaced:
            if s.replaced[rec.command_id] == REPLACED:
                hint = (
                    f"The command replaced the shell; sshkeep set up the new one ({s.shell}), so exact "
                    "results go on. Variables and functions of the old shell that were not exported are gone."
                )
            else:
                hint = lost_integration_text()
        elif s.integration_lost:
            hint = lost_integration_text()
        elif s.shell == NO_SHELL:
            hint = UNINTEGRATED_HINT
        elif status == "interrupted":
            hint = "The command was interrupted (Ctrl-C); the session is ready for the next command."
        if not first and offset < 0:
            raise BadRequest("offset must be >= 0")
        key = (s.key, rec.command_id)
        saved = await self._save(s, rec, end, local_path) if local_path is not None else None
        shown = self._shown.get(key, 0) if since_shown else 0
        if shown:
            # A reply that continues a command starts where the earlier replies stopped.
            first, offset, limit = False, shown, DEFAULT_PAGE_LINES
        elif since_shown:
            first = True
        view = await s.output_page(
            rec, end, first=first, offset=offset, limit=limit if limit is not None else DEFAULT_PAGE_LINES
        )
        if first or shown:
            # The last line may still grow (a prompt being answered): it counts as not yet shown.
            upto = view.next_offset if view.next_offset is not None else max(0, view.total - 1)
            self._shown[key] = max(self._shown.get(key, 0), upto)
        if shown and hint is None and view.lines:
            hint = f"Output lines before {shown} were in an earlier reply."
        lines = view.lines if saved is None else []
        if screen is not None:
            # A full-screen program's reply is its screen: the stream of frames is not output, and
            # none of it needs sending again once the program has quit.
            lines = []
            self._shown[key] = max(self._shown.get(key, 0), view.total)
        if view.next_offset is not None and hint is None:
            hint = (
                f"More output: get_command({s.ref}, command_id={rec.command_id!r}, "
                f"offset={view.next_offset})."
            )
        lost, uncounted = s.unrecorded(rec, end)
        if lost or uncounted:
            hint = " ".join(x for x in (hint, unrecorded_hint(lost, uncounted, s, rec)) if x)
        reply: dict[str, Any] = dict(
            session_id=s.id,
            terminal=s.terminal,
            command_id=rec.command_id,
            command=rec.command,
            status=status,
            exit_code=exit_code,
            output="\n".join(lines),
            offset=view.offset,
            next_offset=view.next_offset,
            has_more=view.next_offset is not None,
            total_lines=view.total,
            truncated=view.truncated,
            question=question,
            screen=screen,
            saved=saved,
            hint=hint,
            dropped_bytes=view.dropped + lost,
            uncounted_gaps=uncounted,
            started_at=rec.started_at,
            ended_at=ended_at,
            source=rec.wire_source,
            person_commands=self.report(s),
        )
        # Only what is set: every field left out defaults to None, and pydantic validates fewer values.
        return CommandResult(**{k: v for k, v in reply.items() if v is not None})

    async def _save(self, s: Session, rec: CommandRecord, end: int, local_path: str) -> SavedOutput:
        """Write the command's whole output (up to `end`) to a local file, page by page."""
        if self.local is None:
            raise BadRequest("saving output to a local file is not available here")

        async def pages() -> AsyncIterator[list[str]]:
            offset = 0
            while True:
                view = await s.output_page(rec, end, first=False, offset=offset, limit=SAVE_PAGE_LINES)
                if view.lines:
                    yield view.lines
                if view.next_offset is None:
                    return
                offset = view.next_offset

        return await self.local.save_output(pages(), local_path)

    def _record(self, s: Session, command_id: str | None) -> CommandRecord:
        if command_id is None:
            if s.current is not None:
                return s.current
            if not s.commands:
                raise CommandNotFound(f"{_where(s)} has run no command yet")
            return max(s.commands.values(), key=lambda r: r.seq)
        rec = s.commands.get(command_id)
        if rec is None:
            raise CommandNotFound(f"{_where(s)} has no command {command_id!r}")
        return rec

    async def get_command(
        self,
        sid: str,
        command_id: str | None,
        offset: int = 0,
        limit: int | None = None,
        wait: float = 0.0,
        terminal: str | None = None,
        local_path: str | None = None,
    ) -> CommandResult:
        s = self.lookup(sid, terminal)
        rec = self._record(s, command_id)
        if wait > 0 and rec.out_end is None:
            await self._wait_command(s, rec, wait)
        if offset == 0 and limit is None:
            return await self._result(s, rec, first=True, local_path=local_path)
        return await self._result(s, rec, offset=offset, limit=limit, local_path=local_path)

    async def interrupt(self, sid: str, timeout: float = 5.0, terminal: str | None = None) -> CommandResult:
        s = self.lookup(sid, terminal)
        self.guard(s)
        if s.dead:
            raise SessionDisconnected(f"{_where(s)} is disconnected")
        rec = s.current
        s.interrupt_requested = rec is not None
        await self.tmux.command(f"send-keys -t {s.pane_id} C-c")
        # Quiet time counts from the keys: the question that was pending is not the answer to them.
        s.last_growth = time.monotonic()
        if rec is None:
            # Nothing runs: the Ctrl-C only redraws the prompt (and drops a half-typed line). The
            # reply waits for that prompt cycle, so it never counts as the next command's.
            s.keys_cycle_at = s.last_growth
            await self._settle_keys(s)
            if not s.commands:
                raise CommandNotFound(f"{_where(s)} has no running command (Ctrl-C was sent anyway)")
            last = self._record(s, None)
            res = await self._result(s, last)
            # None of the last command's output again: this reply is about the Ctrl-C.
            note = (
                f"Nothing was running: Ctrl-C went to the idle prompt. status and exit_code are the last "
                f"command's ({last.command_id}), which had already ended."
            )
            return res.model_copy(
                update={
                    "output": "",
                    "offset": res.total_lines,
                    "next_offset": None,
                    "has_more": False,
                    "truncated": None,
                    "hint": None,
                    "note": note,
                }
            )
        await self._wait_command(s, rec, timeout)
        if rec.out_end is None and not s.dead:
            # Some programs ignore one Ctrl-C (or sit in a prompt): try once more, then report.
            await self.tmux.command(f"send-keys -t {s.pane_id} C-c")
            s.last_growth = time.monotonic()
            await self._wait_command(s, rec, 2.0)
        res = await self._result(s, rec, since_shown=True)
        if res.question is not None and res.question.kind == "prompt" and program_of(rec.command) in SHELLS:
            res.hint = (
                f"The command runs a shell ({program_of(rec.command)}) that waits at its prompt; Ctrl-C "
                'does not end a shell: send_keys(["exit", "Enter"]) leaves it.'
            )
        return res

    async def send_keys(
        self, sid: str, keys: list[str], wait: float = 3.0, terminal: str | None = None
    ) -> SendKeysResult:
        """Type keys; then wait (up to `wait` s) for the command they went to, and return its result."""
        s = self.lookup(sid, terminal)
        self.guard(s)
        if s.dead:
            raise SessionDisconnected(f"{_where(s)} is disconnected; keys were not sent")
        line = keys_command(s.pane_id, keys)
        if not line:
            raise BadRequest("keys holds only empty strings")
        if "\n" in line:
            raise BadRequest('a key item contains a newline: send each line as text followed by "Enter"')
        if s.current is None and s.integrated:
            await self._until_reading(s)
        s.keys_sent()  # a prompt cycle these keys start is the agent's (source `keys`)
        # The command the keys go to, taken before they are sent: it may end before tmux returns.
        target = s.current
        before = max((r.seq for r in s.commands.values()), default=0)
        await self.tmux.command(line)
        # A question pending before these keys must not be reported again before the terminal reacts.
        s.last_growth = time.monotonic()
        ends_line = any(k in LINE_ENDING_KEYS for k in keys)
        if target is None and ends_line:
            s.keys_cycle_at = s.last_growth  # the next command waits for the prompt cycle they start
            typed = typed_command(keys)
            if s.integrated and s.shell in ("dash", "ash") and typed is not None and replaces_shell(typed):
                await s.follow_typed(typed)
        started = time.monotonic()
        rec = target
        if rec is None and ends_line and wait > 0 and s.integrated:
            # A command line typed at the idle prompt: its prompt cycle gets a record (source
            # `keys`) when it starts; follow that one.
            rec = await self._cycle_record(s, before, min(wait, KEYS_SETTLE))
        sent = len([k for k in keys if k])
        if rec is None:
            return SendKeysResult(
                session_id=sid,
                terminal=s.terminal,
                sent=sent,
                hint="No command runs: get_snapshot shows the screen.",
                person_commands=self.report(s),
            )
        left = wait - (time.monotonic() - started)
        if left > 0 and rec.out_end is None:
            await self._wait_command(s, rec, left)
        res = await self._result(s, rec, since_shown=True)
        return SendKeysResult(
            session_id=sid,
            terminal=s.terminal,
            sent=sent,
            running_command_id=rec.command_id if rec.out_end is None else None,
            result=res,
            person_commands=self.report(s),
        )

    async def _cycle_record(self, s: Session, after_seq: int, timeout: float) -> CommandRecord | None:
        """The record of the prompt cycle typed keys started (the newest past `after_seq`), once
        it exists; None when none starts within `timeout` (an empty line, a key that ran nothing)."""
        deadline = time.monotonic() + timeout
        async with s.changed:
            while True:
                newer = [r for r in s.commands.values() if r.seq > after_seq]
                if newer:
                    return max(newer, key=lambda r: r.seq)
                left = deadline - time.monotonic()
                if left <= 0 or s.dead or s.closed:
                    return None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(s.changed.wait(), min(left, 0.25))

    async def wait_for(
        self, sid: str, pattern: str, timeout: float, since: int | None = None, terminal: str | None = None
    ) -> WaitForResult:
        """Wait until new output matches `pattern`, the running command ends, or time is up."""
        s = self.lookup(sid, terminal)
        compiled = Pattern.compile(pattern)
        start_pos = s.current_size() if since is None else max(s.dropped_before, min(since, s.current_size()))
        rec = s.current
        deadline = time.monotonic() + timeout
        searched_to = start_pos
        carry = ""
        while True:
            # Chunk by chunk, each in a worker thread: the event loop stays free meanwhile.
            while searched_to < s.scan_pos:
                try:
                    hit, searched_to, carry = await asyncio.to_thread(
                        search_chunk, s.read_log, compiled, searched_to, s.scan_pos, carry
                    )
                except BudgetSpent:
                    return WaitForResult(
                        session_id=sid,
                        terminal=s.terminal,
                        matched=False,
                        pattern=pattern,
                        running_command_id=s.current.command_id if s.current else None,
                        command_status="running" if s.current else None,
                        searched_to=searched_to,
                        hint=f"The pattern used up its {BUDGET:g} s matching budget (it backtracks too "
                        "much, e.g. nested or overlapping repeats like (a|aa)+): simplify it and "
                        f"wait_for again with since={searched_to}.",
                    )
                if hit is not None:
                    return WaitForResult(
                        session_id=sid,
                        terminal=s.terminal,
                        matched=True,
                        pattern=pattern,
                        line=s.redact(hit.line),
                        context=s.redact(hit.context),
                        running_command_id=s.current.command_id if s.current else None,
                        command_status="running" if s.current else None,
                        searched_to=searched_to,
                    )
                if time.monotonic() >= deadline:
                    break
            ended = rec is not None and rec.out_end is not None
            if ended or s.dead or s.closed or time.monotonic() >= deadline:
                status = rec.status if ended and rec is not None else ("disconnected" if s.dead else None)
                why = "the command ended" if ended else ("ssh exited" if s.dead else f"{timeout:g}s passed")
                more = (
                    f" Output up to {s.scan_pos} is not searched yet: wait_for(since={searched_to}) goes on."
                    if searched_to < s.scan_pos
                    else ""
                )
                return WaitForResult(
                    session_id=sid,
                    terminal=s.terminal,
                    matched=False,
                    pattern=pattern,
                    running_command_id=rec.command_id if rec else None,
                    command_status=status,
                    searched_to=searched_to,
                    hint=f"No match: {why}.{more} get_snapshot shows the screen; "
                    "wait_for again waits longer.",
                )
            # The condition is held only while waiting: scans must not wait for a search.
            async with s.changed:
                if s.scan_pos <= searched_to:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            s.changed.wait(), max(0.01, min(0.5, deadline - time.monotonic()))
                        )

    async def search(self, sid: str, req: SearchRequest) -> SearchResult:
        """Search one command's output, or every command's in order."""
        s = self.lookup(sid, None)
        if req.command_id is None:
            records = sorted(s.commands.values(), key=lambda r: r.seq)
            if not records:
                raise CommandNotFound(f"session {sid} has run no command yet")
        else:
            records = [self._record(s, None if req.command_id == "last" else req.command_id)]
        return await search_output(s, records, req)

    async def snapshot(self, sid: str, lines: int | None = None, terminal: str | None = None) -> Snapshot:
        s = self.lookup(sid, terminal)
        start = f" -S -{lines}" if lines else ""
        try:
            screen = await self.tmux.command(f"capture-pane -p -J -t {s.pane_id}{start}")
            info = await self.tmux.command(
                f"display-message -p -t {s.pane_id} '#{{cursor_x}} #{{cursor_y}} #{{alternate_on}}'"
            )
        except TmuxCommandFailed as exc:
            raise SessionNotFound(f"{_where(s)}: its pane is gone ({exc.message})") from exc
        while screen and not screen[-1].strip():
            screen.pop()
        cx, cy, alt = [*info[0].split(), "0", "0", "0"][:3] if info else ("0", "0", "0")
        return Snapshot(
            session_id=sid,
            terminal=s.terminal,
            screen=s.redact("\n".join(line.rstrip() for line in screen)),
            lines=len(screen),
            cursor_x=int(cx),
            cursor_y=int(cy),
            alternate_screen=alt == "1",
            state=s.state,
            person_commands=self.report(s),
        )


def _where(s: Session) -> str:
    return f"session {s.id}" if s.terminal == MAIN_TERMINAL else f"terminal {s.terminal} of session {s.id}"


def _busy_hint(s: Session) -> str:
    cid = s.current.command_id if s.current is not None else "last"
    hint = (
        f"Follow it with get_command({s.ref}, command_id={cid!r}, wait=30), answer it with send_keys, "
        "or stop it with interrupt_command"
    )
    return hint + "; open_terminal gives a second shell on the same connection for parallel work."
