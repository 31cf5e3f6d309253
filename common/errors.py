"""The one error tree of sshkeep.

Every failure that crosses a boundary (HTTP API, MCP tool, CLI) is an `SshkeepError` with a stable
`code`, an HTTP `status`, a message naming what is wrong and a `hint` naming the next step. Foreign
exceptions (OSError, subprocess, tmux, ssh, pydantic) are mapped into this tree at the edge.
"""

from __future__ import annotations

from typing import Any, ClassVar


class SshkeepError(Exception):
    """Base of every sshkeep error; carries a stable code, an HTTP status and a hint."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    default_hint: ClassVar[str] = "This is a bug in sshkeep; the daemon log has details."

    def __init__(self, message: str, *, hint: str | None = None, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint
        self.context = context

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, str]:
        out = {"code": self.code, "message": self.message, "hint": self.hint}
        if isinstance(self.context.get("approval_id"), str):
            out["approval_id"] = self.context["approval_id"]
        return out


class BadRequest(SshkeepError):
    """The request is malformed: bad JSON, unknown field, wrong type, too large."""

    code = "bad_request"
    status = 400
    default_hint = "Fix the named field and send the request again."


class PayloadTooLarge(BadRequest):
    code = "payload_too_large"
    status = 413
    default_hint = "Send less data per request (split it, or use write_remote_file for files)."


class NotFound(SshkeepError):
    code = "not_found"
    status = 404
    default_hint = "Check the id."


class SessionNotFound(NotFound):
    code = "session_not_found"
    default_hint = "Call list_sessions for the ids that exist, or open_session for a new one."


class CommandNotFound(NotFound):
    code = "command_not_found"
    default_hint = "Use the command_id returned by send_command for this session."


class TerminalNotFound(NotFound):
    code = "terminal_not_found"
    default_hint = "list_sessions shows each session's terminals; open_terminal opens one."


class JobNotFound(NotFound):
    code = "job_not_found"
    default_hint = "list_jobs shows the jobs and their ids."


class ConnectionNotFound(NotFound):
    code = "connection_not_found"
    default_hint = "Call list_available_configs for the configured names."


class Conflict(SshkeepError):
    code = "conflict"
    status = 409
    default_hint = "Retry once the other operation has finished."


class SessionBusy(Conflict):
    code = "session_busy"
    default_hint = (
        "A command is still running: follow it with get_command, answer it with send_keys, "
        "or stop it with interrupt_command."
    )


class TerminalExists(Conflict):
    code = "terminal_exists"
    default_hint = "Pick another name, or use the terminal that exists (pass it as `terminal`)."


class SessionDisconnected(Conflict):
    code = "session_disconnected"
    default_hint = "Call reconnect_session to start a fresh ssh in this session, or close_session."


class NotIntegrated(Conflict):
    """The terminal's shell has no sshkeep markers any more (a command replaced it with one that
    is not sh-compatible): commands count as done after quiet output, exit codes are unknown."""

    code = "not_integrated"
    default_hint = (
        "The terminal is no longer integrated: a command counts as done after 1 s of quiet output and "
        "exit_code is null. open_terminal gives an integrated shell on the same connection; "
        "close_session ends this one."
    )


class SessionNotReady(Conflict):
    code = "session_not_ready"
    default_hint = "The session is waiting for input: answer with send_keys, or close_session."


class HumanControl(Conflict):
    """A person holds the session's terminal (`sshkeep attach --take`)."""

    code = "human_control"
    default_hint = (
        "A person has taken over this session's terminal. Reads (get_command, get_snapshot, "
        "list_commands) still work; wait and try again later, or ask the person to hand it back "
        "(detach with Ctrl-b d, or run `sshkeep release <session>`)."
    )


class NoSecretQuestion(Conflict):
    """answer_secret was called while the terminal asks no secret question."""

    code = "no_secret_question"
    default_hint = (
        "A secret is typed only into a pending password/passphrase/one-time-code/token prompt, never "
        "onto a command line: run the command that asks (send_command), then answer_secret once its "
        "status is waiting_input; for sudo, answer_secret(..., sudo=true) validates sudo first."
    )


class SecretNotFound(NotFound):
    code = "secret_not_found"
    default_hint = "Use one of the secret names the message lists (list_available_configs shows them too)."


class SecretUnavailable(SshkeepError):
    """A credential command failed, timed out or printed nothing."""

    code = "secret_unavailable"
    status = 502
    default_hint = "Fix the secret's credential command in config.yml (the message quotes its stderr)."


class ConfigError(SshkeepError):
    code = "config_error"
    status = 422
    default_hint = "Fix config.yml (the message names the entry and field); it is re-read on change."


class ConnectFailed(SshkeepError):
    code = "connect_failed"
    status = 502
    default_hint = "Check host, port, user and credentials; the message quotes ssh."


class RemoteError(SshkeepError):
    code = "remote_error"
    status = 502
    default_hint = "The remote side refused; the message says why."


class TmuxError(SshkeepError):
    code = "tmux_error"
    status = 500
    default_hint = "tmux failed; check that tmux is installed and the daemon log."


class TmuxCommandFailed(TmuxError):
    """tmux ran the command and refused it (`%error` on the control client, or a non-zero exit):
    e.g. the pane or session it names is gone. Other TmuxErrors mean tmux could not be asked."""


class DaemonUnavailable(SshkeepError):
    code = "daemon_unavailable"
    status = 503
    default_hint = (
        "Start it with `sshkeep daemon` (or let `sshkeep mcp` start it) and check `sshkeep status`."
    )


class CallInterrupted(DaemonUnavailable):
    """The daemon went away after a call that must not be sent twice reached it: it may or may not
    have been carried out, so the client does not repeat it."""

    code = "call_interrupted"
    default_hint = (
        "A new daemon serves now; the sessions and their commands are kept. Check what happened "
        "before repeating the call: list_commands and get_snapshot show what was typed, list_jobs "
        "and list_sessions what was started or opened."
    )


class DaemonAlreadyRunning(SshkeepError):
    code = "daemon_running"
    status = 409
    default_hint = "Use the running daemon, or stop it first (`sshkeep status` shows it)."


class Forbidden(SshkeepError):
    code = "forbidden"
    status = 403
    default_hint = "Only the user who owns the daemon may use its socket."


class UnsafeRuntimeDir(Forbidden):
    """The runtime dir or the daemon socket may be someone else's: nothing was sent there."""

    code = "unsafe_runtime_dir"
    default_hint = (
        "Another user may have created this path to intercept sshkeep. Nothing was sent to it. "
        "Remove it (as root or its owner), or set XDG_RUNTIME_DIR (or SSHKEEP_SOCKET) to a directory "
        "only you can write; `sshkeep daemon` otherwise moves to an unpredictable directory by itself."
    )


class PolicyRefused(Forbidden):
    """The connection's policy does not allow this (read_only, or a deny rule)."""

    code = "policy_refused"
    default_hint = (
        "The connection's policy (config.yml) refuses this; only config.yml can change a policy. "
        "check_command shows how a command is classified."
    )


class ApprovalRequired(Conflict):
    """The policy asks a person first; nothing was run or typed. Carries `approval_id`."""

    code = "approval_required"
    default_hint = "A person approves with `sshkeep approve ID` (or declines with `sshkeep decline ID`)."


class ApprovalNotFound(NotFound):
    code = "approval_not_found"
    default_hint = "`sshkeep approvals` lists the open approval requests."


class ApprovalClosed(Conflict):
    code = "approval_closed"
    default_hint = "The request was already answered or has expired; run the command again for a new one."


_BY_CODE: dict[str, type[SshkeepError]] = {}


def _register(cls: type[SshkeepError]) -> None:
    _BY_CODE.setdefault(cls.code, cls)
    for sub in cls.__subclasses__():
        _register(sub)


_register(SshkeepError)


def from_payload(payload: dict[str, Any], status: int) -> SshkeepError:
    """Rebuild an error from the API's `{"error": {...}}` body (client side)."""
    code = str(payload.get("code", "internal_error"))
    cls = _BY_CODE.get(code, SshkeepError)
    err = cls(str(payload.get("message", f"HTTP {status}")), hint=payload.get("hint"))
    if cls is SshkeepError:
        err.context["code"] = code
    if isinstance(payload.get("approval_id"), str):
        err.context["approval_id"] = payload["approval_id"]
    return err
