"""Wire models of the guard rails: dry runs, approvals and their answers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from sshkeep.common.models.base import MAX_COMMAND_CHARS, Reply, Request

PolicyName = Literal["admin", "operator", "read_only"]
POLICY_NAMES: tuple[PolicyName, ...] = ("admin", "operator", "read_only")
CommandClass = Literal["read", "write", "unknown", "destructive", "privileged"]
Verdict = Literal["allow", "ask", "refuse"]
ApprovalState = Literal["pending", "approved", "declined", "expired", "used"]
ApprovalRoute = Literal["cli", "http", "mcp_elicitation"]
Grant = Literal["once", "timed"]
APPROVAL_ID_PATTERN = r"^a[0-9a-f]{12}$"
MAX_GRANT_SECONDS = 24 * 3600.0


class ApprovalNeeded(Reply):
    """What a tool returns instead of running something that needs a person's yes."""

    approval_id: str
    command_class: CommandClass
    reason: str = Field(description="Why the policy asks (the class and the command that decided it)")
    expires_at: float = Field(description="Unix time after which the request lapses (fails closed)")
    hint: str


class CheckCommandRequest(Request):
    command: str = Field(
        min_length=1, max_length=MAX_COMMAND_CHARS, description="Shell command line to classify (not run)"
    )


class CommandPartInfo(Reply):
    command: str = Field(description="One command found in the line (`?` for a word computed at run time)")
    command_class: CommandClass
    reason: str


class CheckResult(Reply):
    session_id: str
    host: str
    policy: PolicyName
    command_class: CommandClass
    reason: str
    decision: Verdict = Field(description="What send_command would do: allow, ask (approval) or refuse")
    rule: str | None = Field(default=None, description="The config.yml rule that decided, if one did")
    granted: bool = Field(default=False, description="An approval for this exact command is in force")
    parts: list[CommandPartInfo] = Field(default_factory=list)
    hint: str | None = None


class Approval(Reply):
    approval_id: str
    session_id: str
    host: str
    operation: str = Field(description="The tool that asked: send_command, exec_command, send_keys …")
    command: str = Field(description="The exact text (or file write) the approval is bound to")
    command_class: CommandClass
    reason: str
    state: ApprovalState
    created_at: float
    expires_at: float
    grant: Grant | None = None
    grant_until: float | None = None
    decided_by: str | None = Field(default=None, description="Who answered (uid/pid of the caller)")
    route: ApprovalRoute | None = Field(default=None, description="How the answer came")


class ApprovalList(Reply):
    approvals: list[Approval]


class ApprovalPath(Request):
    approval_id: str = Field(
        pattern=APPROVAL_ID_PATTERN, max_length=13, description="Approval id from an approval_required reply"
    )


class ApproveRequest(Request):
    grant: Grant = Field(
        default="once", description="once: the next run of this exact command; timed: every run until expiry"
    )
    grant_seconds: float = Field(
        default=600.0, gt=0, le=MAX_GRANT_SECONDS, description="How long a timed grant lasts (max a day)"
    )
    route: ApprovalRoute = Field(
        default="http", description="How the person answered (recorded in the audit)"
    )


class DeclineRequest(Request):
    route: ApprovalRoute = Field(
        default="http", description="How the person answered (recorded in the audit)"
    )
